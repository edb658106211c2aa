import { describe, expect, it } from 'vitest';
import type { HealthView } from './chartHealth';
import { bannerFor, healthChange } from './chartNotices';

const live: HealthView = { health: 'live', label: 'Live', detail: '', degraded: false };
const stale = (detail: string): HealthView => ({ health: 'stale', label: 'Stale', detail, degraded: true });

describe('bannerFor', () => {
  it('shows no banner while the chart is fine, nor for a closed market (the badge says it)', () => {
    expect(bannerFor(live).hidden).toBe(true);
    expect(bannerFor({ health: 'closed', label: 'Closed', detail: 'The market is closed.', degraded: false }).hidden).toBe(true);
  });

  it('offers Retry where loading again can help, not while offline (the connection retries itself)', () => {
    expect(bannerFor(stale('No update for 2 min.'))).toEqual({ hidden: false, retry: true });
    expect(bannerFor({ health: 'error', label: 'Error', detail: 'Could not load.', degraded: true }).retry).toBe(true);
    expect(bannerFor({ health: 'refused', label: 'Not live', detail: 'Refused.', degraded: true }).retry).toBe(true);
    expect(bannerFor({ health: 'offline', label: 'Offline', detail: 'Disconnected.', degraded: true })).toEqual({ hidden: false, retry: false });
  });
});

describe('healthChange', () => {
  it('shows and counts the first health', () => {
    expect(healthChange(null, live)).toEqual({ shown: true, counted: true });
  });

  it('changes nothing for the same health in the same words', () => {
    expect(healthChange(stale('No update for 70 s'), stale('No update for 70 s'))).toEqual({ shown: false, counted: false });
  });

  it('rewords a banner without making the page recount (a stale chart counts its silence up)', () => {
    expect(healthChange(stale('No update for 70 s'), stale('No update for 71 s'))).toEqual({ shown: true, counted: false });
  });

  it('counts a change of health', () => {
    expect(healthChange(stale('No update for 70 s'), live)).toEqual({ shown: true, counted: true });
  });
});
