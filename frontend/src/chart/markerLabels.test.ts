import { describe, expect, it } from 'vitest';
import { clampLabelLeft, placeLabels, LABEL_HEIGHT_PX, LABEL_OFFSET_PX } from './markerLabels';

describe('marker labels', () => {
  it('stay inside the pane at both edges', () => {
    expect(clampLabelLeft(100, 40, 500)).toBe(80);
    expect(clampLabelLeft(495, 40, 500)).toBe(458); // would end at 515: moved in to end at 498
    expect(clampLabelLeft(3, 40, 500)).toBe(2);
    expect(clampLabelLeft(50, 600, 500)).toBe(2);
  });

  it('are placed beside their bar, the newer kept where two overlap, off-pane ones left out', () => {
    const base = { width: 60, color: '#000' };
    const placed = placeLabels(
      [
        { ...base, text: 'old', x: 480, y: 100, above: true },
        { ...base, text: 'new', x: 490, y: 100, above: true },
        { ...base, text: 'below', x: 490, y: 100, above: false },
        { ...base, text: 'gone', x: 600, y: 100, above: true },
      ],
      500,
    );
    expect(placed.map((p) => p.text)).toEqual(['new', 'below']);
    for (const p of placed) expect(p.left + p.width).toBeLessThanOrEqual(498);
    expect(placed[0].top).toBe(100 - LABEL_OFFSET_PX - LABEL_HEIGHT_PX);
    expect(placed[1].top).toBe(100 + LABEL_OFFSET_PX);
  });
});
