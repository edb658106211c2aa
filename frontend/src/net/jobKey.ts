/**
 * The trader key for backtests and optimizations. Jobs work without a key on most servers (under small
 * anonymous budgets); when the server answers 401 or 403 for a job, the dashboard asks for a key once,
 * keeps it for the browser session (sessionStorage, never localStorage: it goes with the tab) and sends
 * it as `Authorization: Bearer <key>`. A key the server refuses is forgotten. When a job is beyond an
 * anonymous budget (`"anonymous_budget": true`) and no key is kept, it offers to enter one too.
 */
import { ApiRequestError } from './api';

/** What sessionStorage offers (injectable for tests). */
export interface KeyStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** Asks the user for a key; `null` or empty = cancelled. */
export type AskKey = (message: string) => string | null;

export const STORAGE_KEY = 'candlecast.traderKey';

export class JobKey {
  constructor(
    private readonly store: KeyStore | undefined,
    private readonly ask: AskKey,
  ) {}

  get key(): string | null {
    try {
      return this.store?.getItem(STORAGE_KEY) || null;
    } catch {
      return null; // storage disabled by the browser
    }
  }

  /** Headers for a job request: the bearer token when a key is kept. */
  headers(): Record<string, string> {
    const key = this.key;
    return key ? { authorization: `Bearer ${key}` } : {};
  }

  forget(): void {
    try {
      this.store?.removeItem(STORAGE_KEY);
    } catch {
      /* nothing kept */
    }
  }

  /**
   * Runs `request` with the kept key (if any). On 401/403 (other than jobs being off on the server) it
   * asks for a key, keeps it, and retries once; cancelling the prompt rethrows the server's error.
   */
  async run<T>(request: (headers: Record<string, string>) => Promise<T>): Promise<T> {
    try {
      return await request(this.headers());
    } catch (err) {
      if (!(err instanceof ApiRequestError)) throw err;
      const hadKey = this.key !== null;
      const overBudget = !hadKey && err.body.anonymous_budget === true;
      if (!needsKey(err) && !overBudget) throw err;
      if (hadKey) this.forget();
      const prompt = overBudget
        ? `${err.detail}. Enter a trader key for a larger budget, or cancel:`
        : hadKey
          ? `The server refused the trader key (${err.detail}). Enter a valid key:`
          : `This server needs a trader key for backtests and optimizations (${err.detail}). Enter your key:`;
      const entered = this.ask(prompt)?.trim();
      if (!entered) throw err;
      try {
        this.store?.setItem(STORAGE_KEY, entered);
      } catch {
        /* storage disabled: use the key for this request only */
        return request({ authorization: `Bearer ${entered}` });
      }
      return request(this.headers());
    }
  }
}

function needsKey(err: ApiRequestError): boolean {
  return err.status === 401 || (err.status === 403 && err.code !== 'jobs_disabled');
}

function browserStore(): KeyStore | undefined {
  try {
    return typeof sessionStorage === 'undefined' ? undefined : sessionStorage;
  } catch {
    return undefined;
  }
}

/** The page's key: sessionStorage and the browser's prompt. */
export const jobKey = new JobKey(browserStore(), (message) =>
  typeof window === 'undefined' || typeof window.prompt !== 'function' ? null : window.prompt(message),
);
