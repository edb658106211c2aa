/** The connection dot: green when connected, red otherwise (with the retry time). */
import type { ConnectionState } from '../net/connection';

export function renderStatus(el: HTMLElement, state: ConnectionState, retryInMs?: number): void {
  // Tests read data-state; "connecting" still shows red: no data is flowing yet.
  const connected = state === 'connected';
  el.dataset.state = connected ? 'connected' : 'disconnected';
  el.dataset.detail = state;
  const label = connected
    ? 'Connected'
    : retryInMs !== undefined
      ? `Disconnected — retrying in ${(retryInMs / 1000).toFixed(1)} s`
      : state === 'connecting'
        ? 'Connecting…'
        : 'Disconnected';
  el.title = label;
  el.setAttribute('aria-label', label);
  const text = el.querySelector('.status-text');
  if (text) text.textContent = connected ? 'Live' : state === 'connecting' ? 'Connecting' : 'Offline';
}
