import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import { type SignedRequest, verifySigV4 } from '../../../local/sigv4.ts';
import { sdkSigner } from '../../kit/sigv4.ts';

const credentials = { accessKeyId: 'local', secretAccessKey: 'a-secret-of-this-run' };
const options = { credentials, region: 'local', service: 'execute-api', now: Date.now() };
const sha = (body: string) => createHash('sha256').update(body).digest('hex');

/** A request as the AWS SDK's own signer signs it, in the shape the server receives it. */
async function signed(path: string, body = '', method = 'POST'): Promise<SignedRequest> {
  const signer = sdkSigner({ credentials, region: 'local' });
  const out = await signer.sign({
    method,
    protocol: 'http:',
    hostname: '127.0.0.1',
    port: 3001,
    path,
    query: {},
    headers: { host: '127.0.0.1:3001', 'content-type': 'application/json' },
    body,
  });
  const headers: IncomingHttpHeaders = {};
  for (const [k, v] of Object.entries(out.headers)) headers[k.toLowerCase()] = v;
  return { method, url: path, headers, bodySha256: sha(body) };
}

const withHeaders = (r: SignedRequest, h: IncomingHttpHeaders): SignedRequest => ({
  ...r,
  headers: { ...r.headers, ...h },
});

describe('verifySigV4', () => {
  it("accepts the SDK signer's signature, for ids that need escaping too", async () => {
    for (const id of ['AAAAAAAAAAAAAAA=', 'a+b/c', "it's (odd)*!", 'ünï']) {
      const req = await signed(`/local/@connections/${encodeURIComponent(id)}`, '{"x":1}');
      expect(verifySigV4(req, options), id).toEqual({ ok: true });
    }
  });

  it('refuses hostile variants by name', async () => {
    const good = await signed('/local/@connections/abc%3D', 'hello');
    const auth = String(good.headers.authorization);
    const cases: [string, SignedRequest, RegExp][] = [
      ['no Authorization', withHeaders(good, { authorization: undefined }), /Missing Authentication Token/],
      [
        'another scheme',
        withHeaders(good, { authorization: auth.replace('AWS4-HMAC-SHA256', 'AWS4-HMAC-SHA512') }),
        /not a SigV4/,
      ],
      [
        'a signature one digit off',
        withHeaders(good, { authorization: auth.replace(/.$/, (c) => (c === '0' ? '1' : '0')) }),
        /does not match/,
      ],
      [
        'a scope day other than X-Amz-Date',
        withHeaders(good, { authorization: auth.replace(/\/\d{8}\//, '/19990101/') }),
        /scope/,
      ],
      [
        'no host among the signed headers',
        withHeaders(good, { authorization: auth.replace('host;', '') }),
        /host/,
      ],
      ['a changed host', withHeaders(good, { host: 'evil.example' }), /does not match/],
      [
        'a claimed body hash that is not the body',
        withHeaders(good, { 'x-amz-content-sha256': sha('other') }),
        /body/,
      ],
      ['another body', { ...good, bodySha256: sha('hellO') }, /does not match|body/],
      ['another path', { ...good, url: '/local/@connections/abd%3D' }, /does not match/],
    ];
    for (const [name, req, message] of cases) {
      const verdict = verifySigV4(req, options);
      expect(verdict.ok, name).toBe(false);
      if (!verdict.ok) expect(verdict.reason, name).toMatch(message);
    }
  });

  it('resolves dot-segments as AWS does, so the same canonical path keeps its signature', async () => {
    const good = await signed('/local/@connections/abc%3D', 'hello');
    expect(verifySigV4({ ...good, url: '/local/x/../@connections/abc%3D/.' }, options)).toEqual({ ok: true });
  });

  it('refuses a signature made over 5 minutes away from now, either way', async () => {
    const req = await signed('/local/@connections/abc', 'x');
    expect(verifySigV4(req, { ...options, now: Date.now() + 6 * 60_000 }).ok).toBe(false);
    expect(verifySigV4(req, { ...options, now: Date.now() - 6 * 60_000 }).ok).toBe(false);
    expect(verifySigV4(req, { ...options, now: Date.now() + 4 * 60_000 }).ok).toBe(true);
  });
});
