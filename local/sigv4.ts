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

/** What the `Authorization` header of a SigV4 request says. */
interface Authorization {
  readonly keyId: string | undefined;
  /** The credential scope: `day/region/service/aws4_request`, and anything after it. */
  readonly day: string;
  readonly region: string;
  readonly service: string;
  readonly terminator: string | undefined;
  readonly extraScope: readonly string[];
  /** As sent (`host;x-amz-date`), and split. */
  readonly signedHeaderList: string;
  readonly signedHeaders: readonly string[];
  readonly signature: string;
}

/**
 * Checks the AWS Signature Version 4 of a request, as API Gateway does for
 * `execute-api` calls: the `Authorization` header's scope (key id, date, region,
 * service), the signed headers (`host` and `x-amz-date` among them), the body's hash,
 * the date within the allowed skew, and the signature itself (constant-time compare).
 */
export function verifySigV4(req: SignedRequest, options: VerifyOptions): Verdict {
  const authorization = header(req.headers, 'authorization');
  if (!authorization) return { ok: false, missing: true, reason: 'Missing Authentication Token' };
  const auth = parseAuthorization(authorization);
  if (!auth) return refuse('Authorization header is not a SigV4 signature');
  const amzDate = header(req.headers, 'x-amz-date') ?? '';
  const problem =
    scopeProblem(auth, options) ??
    dateProblem(amzDate, auth.day, options) ??
    signedHeadersProblem(auth.signedHeaders) ??
    bodyHashProblem(req);
  if (problem) return refuse(problem);
  const expected = hmac(
    signingKey(options.credentials.secretAccessKey, auth),
    stringToSign(amzDate, auth, canonicalRequest(req, auth)),
  );
  if (!timingSafeEqual(expected, Buffer.from(auth.signature, 'hex')))
    return refuse('The request signature we calculated does not match the signature you provided.');
  return { ok: true };
}

function refuse(reason: string): Verdict {
  return { ok: false, missing: false, reason };
}

function parseAuthorization(value: string): Authorization | undefined {
  const m = AUTH.exec(value.trim());
  if (!m) return undefined;
  const [, credential = '', signedHeaderList = '', signature = ''] = m;
  const [keyId, day = '', region = '', service = '', terminator, ...extraScope] = credential.split('/');
  return {
    keyId,
    day,
    region,
    service,
    terminator,
    extraScope,
    signedHeaderList,
    signedHeaders: signedHeaderList.split(';'),
    signature,
  };
}

function scopeProblem(auth: Authorization, options: VerifyOptions): string | undefined {
  if (auth.keyId !== options.credentials.accessKeyId)
    return 'The security token included in the request is invalid.';
  if (
    auth.region !== options.region ||
    auth.service !== options.service ||
    auth.terminator !== 'aws4_request' ||
    auth.extraScope.length
  )
    return 'Credential should be scoped to a valid region and service.';
  return undefined;
}

function dateProblem(amzDate: string, day: string, options: VerifyOptions): string | undefined {
  const d = AMZ_DATE.exec(amzDate);
  if (!d || amzDate.slice(0, 8) !== day)
    return 'X-Amz-Date is missing or does not match the credential scope.';
  const signedAt = Date.UTC(
    Number(d[1]),
    Number(d[2]) - 1,
    Number(d[3]),
    Number(d[4]),
    Number(d[5]),
    Number(d[6]),
  );
  if (Math.abs(options.now - signedAt) > (options.maxSkewMs ?? 5 * 60_000))
    return 'Signature expired or not yet valid.';
  return undefined;
}

function signedHeadersProblem(signedHeaders: readonly string[]): string | undefined {
  const sorted = [...signedHeaders].sort();
  if (
    signedHeaders.join(';') !== sorted.join(';') ||
    !signedHeaders.includes('host') ||
    !signedHeaders.includes('x-amz-date')
  )
    return 'SignedHeaders must be sorted and include host and x-amz-date.';
  return undefined;
}

function bodyHashProblem(req: SignedRequest): string | undefined {
  const claimedHash = header(req.headers, 'x-amz-content-sha256');
  if (claimedHash !== undefined && claimedHash !== req.bodySha256)
    return 'The provided x-amz-content-sha256 does not match the body.';
  return undefined;
}

function canonicalRequest(req: SignedRequest, auth: Authorization): string {
  const target = new URL(req.url, 'http://local');
  const canonicalHeaders = auth.signedHeaders
    .map((name) => `${name}:${(header(req.headers, name) ?? '').trim().replace(/\s+/g, ' ')}\n`)
    .join('');
  return [
    req.method,
    canonicalUri(req.url.split('?')[0] ?? '/'),
    canonicalQuery(target.search.slice(1)),
    canonicalHeaders,
    auth.signedHeaderList,
    req.bodySha256,
  ].join('\n');
}

function stringToSign(amzDate: string, auth: Authorization, canonical: string): string {
  const scope = `${auth.day}/${auth.region}/${auth.service}/aws4_request`;
  return ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
}

function signingKey(secretAccessKey: string, auth: Authorization): Buffer {
  return hmac(
    hmac(hmac(hmac(`AWS4${secretAccessKey}`, auth.day), auth.region), auth.service),
    'aws4_request',
  );
}
