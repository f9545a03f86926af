import { isIP } from 'node:net';

/**
 * Canonical text of an IP address (IPv6 compressed and lower-case, IPv4-mapped IPv6
 * as plain IPv4), so one address has one blocklist key. Undefined if not an address.
 *
 * @example normalizeIp('::FFFF:10.0.0.1') // '10.0.0.1'
 */
export function normalizeIp(raw: unknown): string | undefined {
  if (typeof raw !== 'string' || raw.length > 64) return undefined;
  const version = isIP(raw);
  if (version === 4) return raw.split('.').map(Number).join('.');
  if (version !== 6 || raw.includes('%')) return undefined;
  const host = new URL(`http://[${raw}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (mapped) {
    const hi = Number.parseInt(mapped[1] ?? '0', 16);
    const lo = Number.parseInt(mapped[2] ?? '0', 16);
    return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
  }
  return host;
}
