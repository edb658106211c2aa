/** The part of `localStorage` we use; tests pass an in-memory map instead. */
export type KeyValueStore = Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;

export function memoryStore(initial: Record<string, string> = {}): KeyValueStore {
  const map = new Map(Object.entries(initial));
  return {
    getItem: (k) => map.get(k) ?? null,
    setItem: (k, v) => void map.set(k, String(v)),
    removeItem: (k) => void map.delete(k),
  };
}

/**
 * localStorage can throw (private mode, quota, disabled cookies): the page
 * must still work, it just forgets on reload.
 */
export function safeStore(): KeyValueStore {
  try {
    const probe = '__candlecast_probe__';
    window.localStorage.setItem(probe, '1');
    window.localStorage.removeItem(probe);
    return {
      getItem: (k) => {
        try { return window.localStorage.getItem(k); } catch { return null; }
      },
      setItem: (k, v) => {
        try { window.localStorage.setItem(k, v); } catch { /* quota: keep running */ }
      },
      removeItem: (k) => {
        try { window.localStorage.removeItem(k); } catch { /* ignore */ }
      },
    };
  } catch {
    return memoryStore();
  }
}
