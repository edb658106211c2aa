import { describe, expect, it } from 'vitest';
import { HealthInput, chartHealth, formatSilence, staleAfterMs } from './chartHealth';

const base: HealthInput = {
  data: 'live',
  subscription: { state: 'subscribed' },
  connected: true,
  lastActivityAt: 0,
  now: 1000,
  stepMs: 60_000,
};

describe('chartHealth', () => {
  it('calls a silent chart of a closed market closed, not stale, and counts from the open once it opens', () => {
    const night = { ...base, now: 5 * 3_600_000, market: { open: false, openedAgoMs: 0 } };
    expect(chartHealth(night)).toMatchObject({ health: 'closed', label: 'Closed', degraded: false });
    // Ten seconds after the open, yesterday's last bar is not a sign of a frozen chart...
    expect(chartHealth({ ...night, market: { open: true, openedAgoMs: 10_000 } })).toMatchObject({ health: 'live' });
    // ...two minutes of silence into the session is.
    expect(chartHealth({ ...night, market: { open: true, openedAgoMs: 120_000 } })).toMatchObject({ health: 'stale', degraded: true });
    // Offline and refused still win over a closed market.
    expect(chartHealth({ ...night, connected: false }).health).toBe('offline');
    expect(chartHealth({ ...night, subscription: { state: 'refused', reason: 'x' } }).health).toBe('refused');
  });

  it('is live only with the connection up, history in, subscription accepted and recent updates', () => {
    expect(chartHealth(base)).toMatchObject({ health: 'live', degraded: false, detail: '' });
  });

  it('offline wins over everything: no chart claims to be live without a connection', () => {
    expect(chartHealth({ ...base, connected: false, data: 'error' })).toMatchObject({ health: 'offline', degraded: true });
  });

  it('a failed load says why, and so does a refused subscription', () => {
    expect(chartHealth({ ...base, data: 'error', dataError: 'unknown symbol "X"' }).detail).toContain('unknown symbol "X"');
    const refused = chartHealth({ ...base, subscription: { state: 'refused', reason: 'unknown symbol(s): GONEUSDT' } });
    expect(refused).toMatchObject({ health: 'refused', degraded: true });
    expect(refused.detail).toContain('GONEUSDT');
  });

  it('turns stale after its interval plus slack without an update, and live again with one', () => {
    expect(staleAfterMs(1000)).toBe(6000);
    expect(staleAfterMs(60_000)).toBe(90_000);
    expect(staleAfterMs(3_600_000)).toBe(5_400_000);
    expect(chartHealth({ ...base, stepMs: 1000, now: 6000 }).health).toBe('live');
    const stale = chartHealth({ ...base, stepMs: 1000, now: 12_500 });
    expect(stale).toMatchObject({ health: 'stale', degraded: true });
    expect(stale.detail).toContain('12 s');
    expect(chartHealth({ ...base, stepMs: 1000, now: 12_500, lastActivityAt: 12_000 }).health).toBe('live');
  });

  it('loading and syncing are not degraded (they end on their own)', () => {
    expect(chartHealth({ ...base, data: 'loading', subscription: { state: 'pending' } })).toMatchObject({ health: 'loading', degraded: false });
    expect(chartHealth({ ...base, data: 'syncing' })).toMatchObject({ health: 'syncing', degraded: false });
  });

  it('formats silences', () => {
    expect(formatSilence(59_000)).toBe('59 s');
    expect(formatSilence(30 * 60_000)).toBe('30 min');
    expect(formatSilence(5 * 3_600_000)).toBe('5 h');
  });
});
