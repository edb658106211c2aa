import { describe, expect, it } from 'vitest';
import { PALETTES } from './theme';

const rgb = (hex: string) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
const distance = (a: string, b: string) => Math.hypot(...rgb(a).map((v, i) => v - rgb(b)[i]));

describe('chart colours', () => {
  for (const [theme, p] of Object.entries(PALETTES)) {
    it(`${theme}: no server indicator shares a colour with the page SMA or EMA, or with another indicator`, () => {
      for (const c of p.indicators) {
        expect(distance(c, p.sma), `${c} vs SMA ${p.sma}`).toBeGreaterThan(80);
        expect(distance(c, p.ema), `${c} vs EMA ${p.ema}`).toBeGreaterThan(80);
      }
      p.indicators.forEach((a, i) => p.indicators.slice(i + 1).forEach((b) => expect(distance(a, b), `${a} vs ${b}`).toBeGreaterThan(40)));
    });
  }
});
