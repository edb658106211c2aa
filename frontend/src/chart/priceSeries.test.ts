import { describe, expect, it } from 'vitest';
import type { Bar } from '../state/bars';
import { PALETTES } from '../theme';
import { toCandle, toVolume } from './priceSeries';

const p = PALETTES.dark;
const bar = (o: Partial<Bar>): Bar => ({ timestamp: 120_000, open: 10, high: 12, low: 9, close: 11, volume: 5, trades: 3, ...o });

describe('toCandle', () => {
  it('puts a bar at its open time in seconds, in the series default colours', () => {
    const c = toCandle(bar({}), p);
    expect(c).toEqual({ time: 120, open: 10, high: 12, low: 9, close: 11 });
  });

  it('greys a flat bar (no trade in its bucket) so it does not read as a move', () => {
    const c = toCandle(bar({ trades: 0 }), p);
    expect(c).toMatchObject({ color: p.flat, wickColor: p.flat, borderColor: p.flat });
  });
});

describe('toVolume', () => {
  it('colours volume by the bar direction, an unchanged close counting as up', () => {
    expect(toVolume(bar({ close: 11 }), p)).toEqual({ time: 120, value: 5, color: p.volumeUp });
    expect(toVolume(bar({ close: 10 }), p).color).toBe(p.volumeUp);
    expect(toVolume(bar({ close: 9.5 }), p).color).toBe(p.volumeDown);
  });

  it('follows the palette it is given (a theme switch redraws with the new one)', () => {
    expect(toVolume(bar({}), PALETTES.light).color).toBe(PALETTES.light.volumeUp);
    expect(toCandle(bar({ trades: 0 }), PALETTES.light).color).toBe(PALETTES.light.flat);
  });
});
