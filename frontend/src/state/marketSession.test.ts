import { describe, expect, it } from 'vitest';
import { marketState, SessionSpec } from './marketSession';

const nse: SessionSpec = { timezone: 'Asia/Kolkata', open: '09:15', close: '15:30', weekdays: ['mon', 'tue', 'wed', 'thu', 'fri'], holidays: ['2024-01-26'] };
const nyse: SessionSpec = { timezone: 'America/New_York', open: '09:30', close: '16:00', weekdays: ['mon', 'tue', 'wed', 'thu', 'fri'], holidays: [] };
const at = (iso: string) => Date.parse(iso);

describe('marketState', () => {
  it('is open during the session, in the exchange time zone', () => {
    expect(marketState(nse, at('2024-01-25T09:15:00+05:30'))).toEqual({ open: true, openedAgoMs: 0 });
    expect(marketState(nse, at('2024-01-25T10:15:30+05:30'))).toEqual({ open: true, openedAgoMs: 3_630_000 });
    expect(marketState(nse, at('2024-01-25T15:29:59+05:30'))?.open).toBe(true);
  });

  it('is closed before the open, from the close on, on weekends and on holidays', () => {
    expect(marketState(nse, at('2024-01-25T09:14:59+05:30'))?.open).toBe(false);
    expect(marketState(nse, at('2024-01-25T15:30:00+05:30'))?.open).toBe(false);
    expect(marketState(nse, at('2024-01-27T11:00:00+05:30'))?.open).toBe(false); // Saturday
    expect(marketState(nse, at('2024-01-26T11:00:00+05:30'))?.open).toBe(false); // Republic Day
  });

  it('follows New York across daylight saving', () => {
    // 14:30 UTC is 09:30 EST on a winter Friday, 10:30 EDT on a spring Monday.
    expect(marketState(nyse, at('2024-03-08T14:30:00Z'))).toEqual({ open: true, openedAgoMs: 0 });
    expect(marketState(nyse, at('2024-03-11T13:30:00Z'))).toEqual({ open: true, openedAgoMs: 0 });
    expect(marketState(nyse, at('2024-03-11T13:29:00Z'))?.open).toBe(false);
    expect(marketState(nyse, at('2024-03-08T21:00:00Z'))?.open).toBe(false); // 16:00 EST
  });

  it('takes 24:00 as midnight, and makes no claim it cannot back', () => {
    const allDay = { ...nse, open: '00:00', close: '24:00', weekdays: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] };
    expect(marketState(allDay, at('2024-01-27T23:59:59+05:30'))?.open).toBe(true);
    expect(marketState({ ...nse, timezone: 'Mars/Olympus' }, at('2024-01-25T10:00:00+05:30'))).toBeNull();
    expect(marketState({ ...nse, open: '9h' }, at('2024-01-25T10:00:00+05:30'))).toBeNull();
  });
});
