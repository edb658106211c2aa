import { describe, expect, it } from 'vitest';

import { ApiRequestError } from './api';
import { JobKey, KeyStore, STORAGE_KEY } from './jobKey';

class MemoryStore implements KeyStore {
  readonly map = new Map<string, string>();
  getItem(k: string) {
    return this.map.get(k) ?? null;
  }
  setItem(k: string, v: string) {
    this.map.set(k, v);
  }
  removeItem(k: string) {
    this.map.delete(k);
  }
}

/** A fake server: accepts `valid` (or no key when `open`), else 401. Records the headers it saw. */
function server(valid: string, open = false) {
  const seen: Array<Record<string, string>> = [];
  const request = async (headers: Record<string, string>) => {
    seen.push(headers);
    const auth = headers.authorization;
    if (auth === `Bearer ${valid}` || (open && auth === undefined)) return { job_id: 'bt-1' };
    throw new ApiRequestError(401, 'unauthorized', 'send a trader key');
  };
  return { seen, request };
}

describe('JobKey', () => {
  it('sends no key while the server runs jobs anonymously', async () => {
    const store = new MemoryStore();
    const asked: string[] = [];
    const key = new JobKey(store, (m) => (asked.push(m), 'never'));
    const s = server('k', true);
    await expect(key.run(s.request)).resolves.toEqual({ job_id: 'bt-1' });
    expect(s.seen).toEqual([{}]);
    expect(asked).toEqual([]);
  });

  it('asks once on 401, keeps the key for the session and sends it as a bearer token', async () => {
    const store = new MemoryStore();
    const asked: string[] = [];
    const key = new JobKey(store, (m) => (asked.push(m), ' trader-key '));
    const s = server('trader-key');
    await expect(key.run(s.request)).resolves.toEqual({ job_id: 'bt-1' });
    expect(asked).toHaveLength(1);
    expect(store.getItem(STORAGE_KEY)).toBe('trader-key');
    expect(s.seen).toEqual([{}, { authorization: 'Bearer trader-key' }]);
    // The next job uses the kept key at once.
    await key.run(s.request);
    expect(asked).toHaveLength(1);
    expect(s.seen[2]).toEqual({ authorization: 'Bearer trader-key' });
  });

  it('forgets a refused key and asks again; a cancelled prompt rethrows the server error', async () => {
    const store = new MemoryStore();
    store.setItem(STORAGE_KEY, 'old');
    const answers = ['new', null];
    const key = new JobKey(store, () => answers.shift() ?? null);
    const s = server('new');
    await key.run(s.request);
    expect(store.getItem(STORAGE_KEY)).toBe('new');
    const other = server('another');
    await expect(key.run(other.request)).rejects.toMatchObject({ status: 401, code: 'unauthorized' });
    expect(store.getItem(STORAGE_KEY)).toBeNull();
  });

  it('does not ask for other errors, nor when jobs are off on the server', async () => {
    const asked: string[] = [];
    const key = new JobKey(new MemoryStore(), (m) => (asked.push(m), 'k'));
    const busy = async () => {
      throw new ApiRequestError(429, 'limit_exceeded', 'jobs_per_host');
    };
    await expect(key.run(busy)).rejects.toMatchObject({ status: 429 });
    const off = async () => {
      throw new ApiRequestError(403, 'jobs_disabled', 'no keys');
    };
    await expect(key.run(off)).rejects.toMatchObject({ status: 403 });
    expect(asked).toEqual([]);
  });

  it('offers a key when a job is beyond an anonymous budget, but not once a key is kept', async () => {
    const store = new MemoryStore();
    const asked: string[] = [];
    const key = new JobKey(store, (m) => (asked.push(m), 'trader'));
    const seen: Array<Record<string, string>> = [];
    const request = async (headers: Record<string, string>) => {
      seen.push(headers);
      if (headers.authorization) throw new ApiRequestError(400, 'limit_exceeded', 'top is 1000', { limit: 'top' });
      throw new ApiRequestError(400, 'limit_exceeded', 'combinations is 5000', { anonymous_budget: true });
    };
    await expect(key.run(request)).rejects.toMatchObject({ status: 400, detail: 'top is 1000' });
    expect(asked).toHaveLength(1);
    expect(asked[0]).toContain('combinations is 5000');
    expect(seen).toEqual([{}, { authorization: 'Bearer trader' }]);
    // With a key kept, a budget error is just an error.
    await expect(key.run(request)).rejects.toMatchObject({ status: 400 });
    expect(asked).toHaveLength(1);
  });
});
