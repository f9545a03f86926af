const DEFAULT_PORTS: Record<string, string> = { http: '80', https: '443' };
// Strict shape on purpose: URL() would silently strip tabs, paths and user-info and
// turn look-alike letters into punycode, all of which must simply fail to match.
const ORIGIN = /^(https?):\/\/([a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?|\[[0-9a-f:.]{2,45}\])(?::(\d{1,5}))?$/i;

/**
 * Canonical form of a web origin (`scheme://host[:port]`): lower-case scheme and host,
 * default port dropped. Returns undefined for anything that is not exactly an origin
 * (a path, a query, user-info, `null`, whitespace, non-ASCII letters).
 *
 * @example normalizeOrigin('HTTPS://App.Example.com:443') // 'https://app.example.com'
 */
export function normalizeOrigin(value: string): string | undefined {
  const m = ORIGIN.exec(value);
  if (!m) return undefined;
  const scheme = (m[1] ?? '').toLowerCase();
  const host = (m[2] ?? '').toLowerCase();
  const port = m[3];
  if (port !== undefined) {
    const n = Number(port);
    if (n < 1 || n > 65535) return undefined;
    if (String(n) === DEFAULT_PORTS[scheme]) return `${scheme}://${host}`;
    return `${scheme}://${host}:${n}`;
  }
  return `${scheme}://${host}`;
}

/** Whether an `Origin` header value is on the allowlist (entries already normalized). */
export function isOriginAllowed(origin: string, allowlist: readonly string[]): boolean {
  const normalized = normalizeOrigin(origin);
  return normalized !== undefined && allowlist.includes(normalized);
}
