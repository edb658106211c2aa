/**
 * The connection dot: green when connected and every chart is live, amber when connected but some chart
 * is stale, refused or failed (it says how many, and which in its tooltip), red otherwise (with the
 * retry time). A connection that is up but feeds a frozen chart must not read as "Live".
 */
import type { ConnectionState } from '../net/connection';

export interface ChartsHealth {
  total: number;
  /** `SYMBOL interval: Label` per chart that is not live. */
  degraded: string[];
}

export function renderStatus(el: HTMLElement, state: ConnectionState, retryInMs?: number, charts?: ChartsHealth): void {
  // Tests read data-state; "connecting" still shows red: no data is flowing yet.
  const connected = state === 'connected';
  el.dataset.state = connected ? 'connected' : 'disconnected';
  el.dataset.detail = state;
  const bad = connected ? (charts?.degraded ?? []) : [];
  el.dataset.health = !connected ? 'offline' : bad.length > 0 ? 'degraded' : 'ok';
  const label = connected
    ? bad.length > 0
      ? `Connected, but ${bad.length} chart${bad.length > 1 ? 's are' : ' is'} not live: ${bad.join('; ')}`
      : 'Connected'
    : retryInMs !== undefined
      ? `Disconnected — retrying in ${(retryInMs / 1000).toFixed(1)} s`
      : state === 'connecting'
        ? 'Connecting…'
        : 'Disconnected';
  el.title = label;
  el.setAttribute('aria-label', label);
  const text = el.querySelector('.status-text');
  if (text) {
    text.textContent = connected
      ? bad.length > 0
        ? `${bad.length} chart${bad.length > 1 ? 's' : ''} not live`
        : 'Live'
      : state === 'connecting'
        ? 'Connecting'
        : 'Offline';
  }
}
