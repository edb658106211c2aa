/**
 * Dark and light themes. Page colours are CSS variables switched by
 * `data-theme` on <html>; charts draw on canvas and so get their colours
 * from the palette here.
 */
import type { KeyValueStore } from './state/storage';

export type Theme = 'dark' | 'light';

export const THEME_KEY = 'candlecast.theme';

export interface Palette {
  background: string;
  text: string;
  grid: string;
  border: string;
  up: string;
  down: string;
  flat: string;
  volumeUp: string;
  volumeDown: string;
  sma: string;
  ema: string;
  drawing: string;
  drawingSelected: string;
  fill: string;
  fib: readonly string[];
  /** Colours given to server indicators in the order they are added (cycled). */
  indicators: readonly string[];
  /** Reference levels (RSI 30 / 70) and the like. */
  level: string;
}

const SHARED = {
  up: '#26a69a',
  down: '#ef5350',
  volumeUp: 'rgba(38, 166, 154, 0.45)',
  volumeDown: 'rgba(239, 83, 80, 0.45)',
  fib: ['#787b86', '#f23645', '#ff9800', '#4caf50', '#089981', '#00bcd4', '#787b86'],
} as const;

export const PALETTES: Record<Theme, Palette> = {
  dark: {
    ...SHARED,
    background: '#131722',
    text: '#d1d4dc',
    grid: 'rgba(42, 46, 57, 0.6)',
    border: '#2a2e39',
    flat: '#787b86',
    sma: '#f5c542',
    ema: '#42a5f5',
    drawing: '#b39ddb',
    drawingSelected: '#ffffff',
    fill: 'rgba(179, 157, 219, 0.15)',
    indicators: ['#e040fb', '#00e5ff', '#ff9100', '#76ff03', '#ff5252', '#7c4dff', '#ff80ab', '#b2ff59'],
    level: 'rgba(209, 212, 220, 0.35)',
  },
  light: {
    ...SHARED,
    background: '#ffffff',
    text: '#131722',
    grid: 'rgba(197, 203, 206, 0.5)',
    border: '#d6dcde',
    flat: '#9598a1',
    sma: '#c77c02',
    ema: '#1565c0',
    drawing: '#673ab7',
    drawingSelected: '#000000',
    fill: 'rgba(103, 58, 183, 0.12)',
    indicators: ['#8e24aa', '#00796b', '#5d4037', '#2e7d32', '#c62828', '#4527a0', '#ad1457', '#37474f'],
    level: 'rgba(19, 23, 34, 0.3)',
  },
};

export function parseTheme(raw: string | null, prefersDark = true): Theme {
  if (raw === 'dark' || raw === 'light') return raw;
  return prefersDark ? 'dark' : 'light';
}

export class ThemeState {
  private listeners = new Set<(t: Theme) => void>();
  theme: Theme;

  constructor(private readonly store: KeyValueStore) {
    const prefersDark = window.matchMedia?.('(prefers-color-scheme: dark)').matches ?? true;
    this.theme = parseTheme(store.getItem(THEME_KEY), prefersDark);
    document.documentElement.dataset.theme = this.theme;
  }

  get palette(): Palette {
    return PALETTES[this.theme];
  }

  toggle(): void {
    this.set(this.theme === 'dark' ? 'light' : 'dark');
  }

  set(theme: Theme): void {
    this.theme = theme;
    document.documentElement.dataset.theme = theme;
    this.store.setItem(THEME_KEY, theme);
    for (const fn of this.listeners) fn(theme);
  }

  onChange(fn: (t: Theme) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}
