/** Parsed subscription URLs (origin + path), cached: the same few URLs repeat for every delivery. */
export interface Target {
  origin: string;
  path: string;
  protocol: 'http:' | 'https:';
}

const cache = new Map<string, Target | null>();

export function parseTarget(url: string): Target | null {
  let t = cache.get(url);
  if (t === undefined) {
    try {
      const u = new URL(url);
      t =
        (u.protocol === 'http:' || u.protocol === 'https:') && !u.username && !u.password
          ? { origin: u.origin, path: `${u.pathname}${u.search}`, protocol: u.protocol }
          : null;
    } catch {
      t = null;
    }
    if (cache.size > 10_000) cache.clear();
    cache.set(url, t);
  }
  return t;
}
