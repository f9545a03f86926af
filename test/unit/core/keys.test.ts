import { beforeAll, describe, expect, it } from 'vitest';
import {
  generateStoredKey,
  keySetSource,
  parseStoredKeySet,
  publicJwkOf,
  publicOnly,
  type StoredKey,
} from '../../../lambdas/core/keys.ts';
import { issueAccessToken } from '../../../lambdas/core/tokens.ts';
import { fileKeySource } from '../../../local/key-file.ts';
import { TestClock } from '../../kit/clock.ts';

const PUBLIC_MEMBERS = ['alg', 'crv', 'kid', 'kty', 'use', 'x'];
const NOW = new Date(Date.UTC(2030, 0, 1));
const SETTINGS = {
  tokenIssuer: 'urn:test:issuer',
  tokenAudience: 'urn:test:clients',
  accessTokenTtlS: 900,
  clockSkewS: 30,
};
const SUBJECT = { sub: 'user-1', username: 'alice', roles: ['user'], sid: 'family-1' };

describe('public keys', () => {
  let stored: StoredKey;
  beforeAll(async () => {
    stored = await generateStoredKey(NOW);
  });

  it('keeps the private members of a stored key out of its public JWK', () => {
    expect(stored.privateJwk.d).toEqual(expect.any(String));
    const jwk = publicJwkOf(stored);
    expect(jwk).not.toHaveProperty('d');
    expect(Object.keys(jwk).sort()).toEqual(PUBLIC_MEMBERS);
    expect(jwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig', kid: stored.kid });
    expect(jwk.x).toBe(stored.privateJwk.x);
  });

  it('drops any extra member a stored key carries', () => {
    const padded: StoredKey = {
      ...stored,
      privateJwk: { ...stored.privateJwk, p: 'secret', q: 'secret', key_ops: ['sign'], ext: true },
    };
    expect(Object.keys(publicJwkOf(padded)).sort()).toEqual(PUBLIC_MEMBERS);
  });

  it('serves a JWKS with only kty, crv, x, kid, alg and use, one entry per stored key', async () => {
    const older = await generateStoredKey(new Date(NOW.getTime() - 86_400_000));
    const source = keySetSource(async () => ({ keys: [stored, older] }));
    const jwks = await source.publicKeys();

    expect(jwks.map((k) => k.kid)).toEqual([stored.kid, older.kid]);
    for (const key of jwks) expect(Object.keys(key).sort()).toEqual(PUBLIC_MEMBERS);
    const text = JSON.stringify({ keys: jwks });
    expect(text).not.toContain(stored.privateJwk.d);
    expect(text).not.toContain(older.privateJwk.d);
  });

  it('refuses a stored key that is not Ed25519', () => {
    for (const privateJwk of [
      { kty: 'RSA', n: 'AQAB', e: 'AQAB', d: 'AQAB' },
      { kty: 'OKP', crv: 'X25519', x: 'abc', d: 'abc' },
      { kty: 'EC', crv: 'P-256', x: 'abc', y: 'abc', d: 'abc' },
      { kty: 'oct', k: 'c2VjcmV0' },
    ]) {
      expect(() => publicJwkOf({ ...stored, privateJwk }), JSON.stringify(privateJwk)).toThrow();
    }
  });

  it('refuses a key set with no keys or malformed entries', () => {
    for (const text of [
      '{}',
      '{"keys":[]}',
      '{"keys":[{"kid":1}]}',
      '{"keys":[{"kid":"a","privateJwk":null}]}',
    ]) {
      expect(() => parseStoredKeySet(text), text).toThrow();
    }
  });
});

describe('publicOnly', () => {
  it('verifies but refuses to hand out the signing key', async () => {
    const full = fileKeySource(undefined);
    const verifyOnly = publicOnly(full);

    await expect(verifyOnly.signingKey()).rejects.toThrow();
    expect(await verifyOnly.publicKeys()).toEqual(await full.publicKeys());
  });

  it('cannot be used to issue a token', async () => {
    const deps = {
      settings: SETTINGS,
      keys: publicOnly(fileKeySource(undefined)),
      clock: new TestClock(0),
    };
    await expect(issueAccessToken(deps, SUBJECT)).rejects.toThrow();
  });
});
