import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

export interface SigningCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

export interface SignedRequest {
  readonly method: string;
  /** The request target as received: raw path and query, still percent-encoded. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  /** SHA-256 of the body, hex. */
  readonly bodySha256: string;
}

export interface VerifyOptions {
  readonly credentials: SigningCredentials;
  readonly region: string;
  readonly service: string;
  /** Epoch ms. */
  readonly now: number;
  /** How far `X-Amz-Date` may be from now; AWS allows 5 minutes. */
  readonly maxSkewMs?: number;
}

export type Verdict = { ok: true } | { ok: false; missing: boolean; reason: string };

const AUTH = /^AWS4-HMAC-SHA256 Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/;
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

const sha256 = (data: string) => createHash('sha256').update(data, 'utf8').digest('hex');
const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data, 'utf8').digest();

/** RFC 3986 escaping, as SigV4 wants it (encodeURIComponent leaves `!'()*` alone). */
function rfc3986(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** The canonical URI of a non-S3 service: the path as sent, dot-segments resolved, escaped once more. */
function canonicalUri(rawPath: string): string {
  const segments: string[] = [];
  for (const segment of rawPath.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  const trailing = segments.length > 0 && rawPath.endsWith('/') ? '/' : '';
  return rfc3986(`/${segments.join('/')}${trailing}`).replace(/%2F/g, '/');
}

function canonicalQuery(rawQuery: string): string {
  const pairs: [string, string][] = [];
  for (const [k, v] of new URLSearchParams(rawQuery)) {
    if (k.toLowerCase() !== 'x-amz-signature') pairs.push([rfc3986(k), rfc3986(v)]);
  }
  pairs.sort(([ak, av], [bk, bv]) => (ak === bk ? (av < bv ? -1 : av > bv ? 1 : 0) : ak < bk ? -1 : 1));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/**
 * Checks the AWS Signature Version 4 of a request, as API Gateway does for
 * `execute-api` calls: the `Authorization` header's scope (key id, date, region,
 * service), the signed headers (`host` and `x-amz-date` among them), the body's hash,
 * the date within the allowed skew, and the signature itself (constant-time compare).
 */
export function verifySigV4(req: SignedRequest, options: VerifyOptions): Verdict {
  const auth = header(req.headers, 'authorization');
  if (!auth) return { ok: false, missing: true, reason: 'Missing Authentication Token' };
  const m = AUTH.exec(auth.trim());
  if (!m) return { ok: false, missing: false, reason: 'Authorization header is not a SigV4 signature' };
  const [, credential = '', signedHeaderList = '', signature = ''] = m;
  const [keyId, day = '', region = '', service = '', terminator, ...extra] = credential.split('/');
  if (keyId !== options.credentials.accessKeyId)
    return { ok: false, missing: false, reason: 'The security token included in the request is invalid.' };
  if (
    region !== options.region ||
    service !== options.service ||
    terminator !== 'aws4_request' ||
    extra.length
  )
    return {
      ok: false,
      missing: false,
      reason: 'Credential should be scoped to a valid region and service.',
    };

  const amzDate = header(req.headers, 'x-amz-date') ?? '';
  const d = AMZ_DATE.exec(amzDate);
  if (!d || amzDate.slice(0, 8) !== day)
    return {
      ok: false,
      missing: false,
      reason: 'X-Amz-Date is missing or does not match the credential scope.',
    };
  const signedAt = Date.UTC(
    Number(d[1]),
    Number(d[2]) - 1,
    Number(d[3]),
    Number(d[4]),
    Number(d[5]),
    Number(d[6]),
  );
  if (Math.abs(options.now - signedAt) > (options.maxSkewMs ?? 5 * 60_000))
    return { ok: false, missing: false, reason: 'Signature expired or not yet valid.' };

  const signedHeaders = signedHeaderList.split(';');
  const sorted = [...signedHeaders].sort();
  if (
    signedHeaders.join(';') !== sorted.join(';') ||
    !signedHeaders.includes('host') ||
    !signedHeaders.includes('x-amz-date')
  ) {
    return {
      ok: false,
      missing: false,
      reason: 'SignedHeaders must be sorted and include host and x-amz-date.',
    };
  }
  const claimedHash = header(req.headers, 'x-amz-content-sha256');
  if (claimedHash !== undefined && claimedHash !== req.bodySha256)
    return {
      ok: false,
      missing: false,
      reason: 'The provided x-amz-content-sha256 does not match the body.',
    };

  const target = new URL(req.url, 'http://local');
  const canonicalHeaders = signedHeaders
    .map((name) => `${name}:${(header(req.headers, name) ?? '').trim().replace(/\s+/g, ' ')}\n`)
    .join('');
  const canonicalRequest = [
    req.method,
    canonicalUri(req.url.split('?')[0] ?? '/'),
    canonicalQuery(target.search.slice(1)),
    canonicalHeaders,
    signedHeaderList,
    req.bodySha256,
  ].join('\n');
  const scope = `${day}/${region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n');
  const key = hmac(
    hmac(hmac(hmac(`AWS4${options.credentials.secretAccessKey}`, day), region), service),
    'aws4_request',
  );
  const expected = hmac(key, stringToSign);
  if (!timingSafeEqual(expected, Buffer.from(signature, 'hex')))
    return {
      ok: false,
      missing: false,
      reason: 'The request signature we calculated does not match the signature you provided.',
    };
  return { ok: true };
}
