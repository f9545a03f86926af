import { createPublicKey, type JsonWebKey } from 'node:crypto';
import {
  base64url,
  type CryptoKey,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  type JWK,
  SignJWT,
} from 'jose';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../../lambdas/core/errors.ts';
import {
  generateStoredKey,
  type KeySource,
  keySetSource,
  type StoredKey,
} from '../../../lambdas/core/keys.ts';
import {
  issueAccessToken,
  issueTicket,
  verifyAccessToken,
  verifyTicket,
} from '../../../lambdas/core/tokens.ts';
import { fileKeySource } from '../../../local/key-file.ts';
import { TestClock } from '../../kit/clock.ts';
import { decodeJson, encodeJson, outcomeOf, parts, signEd25519, signHmac, without } from '../../kit/forge.ts';

const SETTINGS = {
  tokenIssuer: 'urn:test:issuer',
  tokenAudience: 'urn:test:clients',
  accessTokenTtlS: 900,
  clockSkewS: 30,
};
const START_MS = Date.UTC(2030, 0, 1, 12, 0, 0);
const START_S = START_MS / 1000;
const SUBJECT = { sub: 'user-1', username: 'alice', roles: ['user'], sid: 'family-1' };

const keys = fileKeySource(undefined);
let ourKid: string;
let ourPrivateKey: CryptoKey;
let ourPublicJwk: JWK;
let attacker: { privateKey: CryptoKey; publicJwk: JWK };

beforeAll(async () => {
  const signing = await keys.signingKey();
  ourKid = signing.kid;
  ourPrivateKey = signing.privateKey;
  const [publicJwk] = await keys.publicKeys();
  if (!publicJwk) throw new Error('the key source has no public key');
  ourPublicJwk = publicJwk;
  const pair = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  attacker = { privateKey: pair.privateKey, publicJwk: await exportJWK(pair.publicKey) };
});

function depsAt(clock = new TestClock(START_MS), source: KeySource = keys) {
  return { settings: SETTINGS, keys: source, clock };
}

function verifyNow(token: unknown, clock = new TestClock(START_MS)): Promise<string> {
  return outcomeOf(verifyAccessToken(depsAt(clock), token));
}

/** Our header and a complete, valid claim set at START. */
function ourHeader(over: Record<string, unknown> = {}): Record<string, unknown> {
  return { alg: 'EdDSA', typ: 'at+jwt', kid: ourKid, ...over };
}
function validClaims(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: SETTINGS.tokenIssuer,
    aud: SETTINGS.tokenAudience,
    sub: 'user-1',
    username: 'alice',
    roles: ['user'],
    sid: 'family-1',
    jti: 'c7d5a8c2-0d3e-4b8e-9f7a-1b2c3d4e5f60',
    iat: START_S,
    exp: START_S + SETTINGS.accessTokenTtlS,
    ...over,
  };
}
/** Signed with our real private key: only the claim or header under test can make it fail. */
function signedByUs(claims: unknown, header = ourHeader()): Promise<string> {
  return signEd25519(ourPrivateKey, header, claims);
}

async function issued(clock = new TestClock(START_MS)): Promise<string> {
  return (await issueAccessToken(depsAt(clock), SUBJECT)).token;
}

describe('verifyAccessToken: the happy path', () => {
  it('returns the claims of a token we issued, signed EdDSA as at+jwt under our kid', async () => {
    const clock = new TestClock(START_MS);
    const { token, claims } = await issueAccessToken(depsAt(clock), SUBJECT);

    const verified = await verifyAccessToken(depsAt(clock), token);

    expect(verified).toEqual(claims);
    expect(verified).toMatchObject({ sub: 'user-1', username: 'alice', roles: ['user'], sid: 'family-1' });
    expect(verified.iat).toBe(START_S);
    expect(verified.exp).toBe(START_S + SETTINGS.accessTokenTtlS);
    expect(verified.jti).toMatch(/^[A-Za-z0-9_.:-]{8,}$/);
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'EdDSA', typ: 'at+jwt', kid: ourKid });
    const payload = decodeJson(parts(token)[1]);
    expect(payload.iss).toBe(SETTINGS.tokenIssuer);
    expect(payload.aud).toBe(SETTINGS.tokenAudience);
  });

  it('gives every token its own jti', async () => {
    const a = await issueAccessToken(depsAt(), SUBJECT);
    const b = await issueAccessToken(depsAt(), SUBJECT);
    expect(a.claims.jti).not.toBe(b.claims.jti);
  });

  it('accepts a hand-built token with every required claim, signed by our key', async () => {
    expect(await verifyNow(await signedByUs(validClaims()))).toBe('accepted');
  });
});

describe('verifyAccessToken: algorithm confusion', () => {
  for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
    for (const [label, signature] of [
      ['an empty signature', ''],
      ['a junk signature', 'junk'],
      ['a real EdDSA signature', 'real'],
    ] as const) {
      it(`refuses alg "${alg}" with ${label}`, async () => {
        const input = `${encodeJson(ourHeader({ alg }))}.${encodeJson(validClaims())}`;
        const realSignature = parts(await signedByUs(validClaims(), ourHeader({ alg })))[2];
        const token = `${input}.${signature === 'real' ? realSignature : signature}`;
        expect(await verifyNow(token)).toBe('invalid_token');
      });
    }
  }

  const hmacSecrets: [string, () => Uint8Array | string][] = [
    ['the raw public key bytes', () => base64url.decode(ourPublicJwk.x ?? '')],
    ['the public key as base64url text', () => ourPublicJwk.x ?? ''],
    ['the public JWK as JSON', () => JSON.stringify(ourPublicJwk)],
    [
      'the public key as PEM',
      () =>
        createPublicKey({ key: ourPublicJwk as JsonWebKey, format: 'jwk' })
          .export({ type: 'spki', format: 'pem' })
          .toString(),
    ],
  ];
  for (const alg of ['HS256', 'HS384', 'HS512'] as const) {
    for (const [label, secret] of hmacSecrets) {
      it(`refuses ${alg} keyed with ${label}`, async () => {
        const token = signHmac(alg, secret(), ourHeader(), validClaims());
        expect(await verifyNow(token)).toBe('invalid_token');
      });
    }
  }

  it('refuses an RS256 token under our kid', async () => {
    const { privateKey } = await generateKeyPair('RS256', { modulusLength: 2048 });
    const token = await new SignJWT(validClaims())
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: ourKid })
      .sign(privateKey);
    expect(await verifyNow(token)).toBe('invalid_token');
  });

  it('refuses an ES256 token under our kid', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const token = await new SignJWT(validClaims())
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: ourKid })
      .sign(privateKey);
    expect(await verifyNow(token)).toBe('invalid_token');
  });
});

describe('verifyAccessToken: whose key', () => {
  it('refuses a token signed with another Ed25519 key under our kid', async () => {
    const token = await signEd25519(attacker.privateKey, ourHeader(), validClaims());
    expect(await verifyNow(token)).toBe('invalid_token');
  });

  it('refuses a token carrying the signer’s own key in an embedded jwk header', async () => {
    for (const header of [
      ourHeader({ jwk: attacker.publicJwk }),
      ourHeader({ kid: undefined, jwk: attacker.publicJwk }),
      ourHeader({ kid: 'attacker', jwk: { ...attacker.publicJwk, kid: 'attacker' } }),
    ]) {
      const token = await signEd25519(attacker.privateKey, header, validClaims());
      expect(await verifyNow(token), JSON.stringify(Object.keys(header))).toBe('invalid_token');
    }
  });

  describe('with a fetch that fails the test if called', () => {
    const realFetch = globalThis.fetch;
    const fetched: string[] = [];
    afterEach(() => {
      globalThis.fetch = realFetch;
    });

    for (const member of ['jku', 'x5u'] as const) {
      for (const kid of ['attacker', 'our kid']) {
        it(`refuses a ${member} header pointing at an attacker URL (kid: ${kid}) and fetches nothing`, async () => {
          fetched.length = 0;
          globalThis.fetch = (async (input: string | URL | Request) => {
            fetched.push(String(input));
            throw new Error('the verifier must not fetch anything');
          }) as typeof fetch;
          const header = ourHeader({
            kid: kid === 'our kid' ? ourKid : 'attacker',
            [member]: 'https://attacker.example/keys.json',
          });
          const token = await signEd25519(attacker.privateKey, header, validClaims());

          expect(await verifyNow(token)).toBe('invalid_token');
          expect(fetched).toEqual([]);
        });
      }
    }
  });

  const hostileKids: [string, unknown][] = [
    ['a path traversal', '../../etc/passwd'],
    ['an SQL injection', "' OR 1=1 --"],
    ['an unknown kid', 'kid-that-we-never-issued'],
    ['an empty kid', ''],
    ['our kid with a trailing NUL', 'OURKID\u0000'],
    ['our kid with a trailing space', 'OURKID '],
    ['a number', 1],
    ['null', null],
    ['an array holding our kid', ['OURKID']],
    ['an object', { $ne: '' }],
  ];
  for (const [label, kid] of hostileKids) {
    it(`refuses a kid that is ${label}, even with our signature`, async () => {
      const resolved = JSON.parse(JSON.stringify(kid ?? null).replaceAll('OURKID', ourKid)) as unknown;
      const token = await signedByUs(validClaims(), ourHeader({ kid: resolved }));
      expect(await verifyNow(token)).toBe('invalid_token');
    });
  }

  it('refuses a token without a kid signed by another key', async () => {
    const token = await signEd25519(attacker.privateKey, ourHeader({ kid: undefined }), validClaims());
    expect(await verifyNow(token)).toBe('invalid_token');
  });

  it('refuses a token without a kid even when signed by our key (tokens are always signed under a kid)', async () => {
    const token = await signedByUs(validClaims(), ourHeader({ kid: undefined }));
    expect(await verifyNow(token)).toBe('invalid_token');
  });

  it('refuses a token from another deployment (its own keys, issuer and audience)', async () => {
    const other = {
      settings: { ...SETTINGS, tokenIssuer: 'urn:other:issuer', tokenAudience: 'urn:other:clients' },
      keys: fileKeySource(undefined),
      clock: new TestClock(START_MS),
    };
    const { token } = await issueAccessToken(other, SUBJECT);
    expect(await verifyAccessToken(other, token)).toMatchObject({ sub: 'user-1' });
    expect(await verifyNow(token)).toBe('invalid_token');
  });

  it('refuses a token from another install that shares our issuer and audience but not our keys', async () => {
    const other = { settings: SETTINGS, keys: fileKeySource(undefined), clock: new TestClock(START_MS) };
    const { token } = await issueAccessToken(other, SUBJECT);
    expect(await verifyNow(token)).toBe('invalid_token');
  });
});

describe('verifyAccessToken: header rules', () => {
  it('refuses an unknown crit header, even with our signature', async () => {
    for (const header of [
      ourHeader({ crit: ['x-policy'], 'x-policy': 'relaxed' }),
      ourHeader({ crit: ['exp'] }),
      ourHeader({ crit: [] }),
      ourHeader({ crit: 'x-policy' }),
    ]) {
      const token = await signedByUs(validClaims(), header);
      expect(await verifyNow(token), JSON.stringify(header.crit)).toBe('invalid_token');
    }
  });

  for (const [label, typ] of [
    ['typ JWT', 'JWT'],
    ['no typ', undefined],
    ['typ id_token+jwt', 'id_token+jwt'],
    ['typ at+jwt as an array', ['at+jwt']],
  ] as const) {
    it(`refuses ${label}, even with our signature`, async () => {
      const token = await signedByUs(validClaims(), ourHeader({ typ }));
      expect(await verifyNow(token)).toBe('invalid_token');
    });
  }
});

describe('verifyAccessToken: integrity', () => {
  it('refuses a handshake ticket as an access token, and an access token as a ticket', async () => {
    const { token, claims } = await issueAccessToken(depsAt(), SUBJECT);
    const { ticket } = await issueTicket(depsAt(), claims);

    expect(await outcomeOf(verifyTicket(depsAt(), ticket))).toBe('accepted');
    expect(await verifyNow(ticket)).toBe('invalid_token');
    expect(await outcomeOf(verifyTicket(depsAt(), token))).toBe('invalid_token');
  });

  it('refuses a token whose roles were changed to admin after signing', async () => {
    const token = await issued();
    const [header, payload, signature] = parts(token);
    const claims = decodeJson(payload);
    const forged = `${header}.${encodeJson({ ...claims, roles: ['admin'] })}.${signature}`;

    expect(await verifyNow(token)).toBe('accepted');
    expect(await verifyNow(forged)).toBe('invalid_token');
  });

  it('refuses a token whose header was swapped for another kid or typ after signing', async () => {
    const [, payload, signature] = parts(await issued());
    for (const header of [ourHeader({ typ: 'AT+JWT' }), ourHeader({ extra: 1 })]) {
      expect(await verifyNow(`${encodeJson(header)}.${payload}.${signature}`)).toBe('invalid_token');
    }
  });

  it('refuses a five-part (JWE-shaped) token', async () => {
    const jweHeader = encodeJson({ alg: 'dir', enc: 'A256GCM', kid: ourKid, typ: 'at+jwt' });
    const [, payload, signature] = parts(await issued());
    const token = `${jweHeader}..${payload}.${signature}.AAAAAAAAAAAAAAAAAAAAAA`;
    expect(token.split('.')).toHaveLength(5);
    expect(await verifyNow(token)).toBe('invalid_token');
  });

  it('refuses a token with too few or too many parts', async () => {
    const token = await issued();
    const [header, payload, signature] = parts(token);
    for (const broken of [
      `${header}.${payload}`,
      `${header}.${payload}.`,
      `${header}.${payload}.${signature}.`,
      `${header}.${payload}.${signature}.${signature}`,
      `.${payload}.${signature}`,
      '..',
      '.',
    ]) {
      expect(await verifyNow(broken)).toBe('invalid_token');
    }
  });

  it('refuses a token longer than 4096 characters before touching the keys, even with our signature', async () => {
    const token = await signedByUs(validClaims({ padding: 'x'.repeat(3500) }));
    expect(token.length).toBeGreaterThan(4096);
    let keyLookups = 0;
    const countingKeys: KeySource = {
      signingKey: () => keys.signingKey(),
      publicKeys: () => {
        keyLookups += 1;
        return keys.publicKeys();
      },
    };

    const outcome = await outcomeOf(verifyAccessToken(depsAt(undefined, countingKeys), token));

    expect(outcome).toBe('invalid_token');
    expect(keyLookups).toBe(0);
  });

  for (const [label, input] of [
    ['undefined', undefined],
    ['null', null],
    ['a number', 42],
    ['an object', { token: 'a.b.c' }],
    ['an array of parts', ['a', 'b', 'c']],
    ['an empty string', ''],
    ['Bearer-prefixed text', 'Bearer a.b.c'],
  ] as const) {
    it(`refuses ${label} as a token`, async () => {
      expect(await verifyNow(input)).toBe('invalid_token');
    });
  }

  for (const [label, wrap] of [
    ['a leading space', (t: string) => ` ${t}`],
    ['a trailing space', (t: string) => `${t} `],
    ['a trailing newline', (t: string) => `${t}\n`],
    ['a trailing CRLF', (t: string) => `${t}\r\n`],
    ['a leading tab', (t: string) => `\t${t}`],
    ['a space inside the signature', (t: string) => `${t.slice(0, -4)} ${t.slice(-4)}`],
    ['base64 padding after the signature', (t: string) => `${t}==`],
  ] as const) {
    it(`refuses one of our tokens with ${label} (token strings must not be malleable)`, async () => {
      const token = await issued();
      expect(await verifyNow(token)).toBe('accepted');
      expect(await verifyNow(wrap(token))).toBe('invalid_token');
    });
  }

  it('reports a key outage as unavailable, not as a bad token', async () => {
    const token = await issued();
    const broken: KeySource = {
      signingKey: () => Promise.reject(new AppError('unavailable', 'keys are unavailable')),
      publicKeys: () => Promise.reject(new AppError('unavailable', 'keys are unavailable')),
    };
    expect(await outcomeOf(verifyAccessToken(depsAt(undefined, broken), token))).toBe('unavailable');
  });
});

describe('verifyAccessToken: time', () => {
  const TTL = SETTINGS.accessTokenTtlS;
  const SKEW = SETTINGS.clockSkewS;

  it('refuses an expired token with token_expired, so that clients know to refresh', async () => {
    const clock = new TestClock(START_MS);
    const token = await issued(clock);
    clock.advance(TTL + SKEW + 1);
    expect(await verifyNow(token, clock)).toBe('token_expired');
  });

  it('accepts a token that expired less than the clock skew ago', async () => {
    const clock = new TestClock(START_MS);
    const token = await issued(clock);
    clock.advance(TTL + SKEW - 1);
    expect(await verifyNow(token, clock)).toBe('accepted');
  });

  it('accepts a token issued slightly (within the skew) in the future', async () => {
    const token = await signedByUs(validClaims({ iat: START_S + SKEW - 5, exp: START_S + SKEW - 5 + TTL }));
    expect(await verifyNow(token)).toBe('accepted');
  });

  it('refuses a token issued in the future beyond the skew', async () => {
    const token = await signedByUs(validClaims({ iat: START_S + SKEW + 60, exp: START_S + SKEW + 60 + TTL }));
    expect(await verifyNow(token)).toBe('invalid_token');
  });

  it('refuses a token older than the maximum age even though its exp is still ahead', async () => {
    const token = await signedByUs(validClaims({ iat: START_S - TTL - SKEW - 60, exp: START_S + 3600 }));
    expect(['invalid_token', 'token_expired']).toContain(await verifyNow(token));
  });

  it('ends a token whose exp lies years ahead at the maximum age', async () => {
    const clock = new TestClock(START_MS);
    const token = await signedByUs(validClaims({ exp: START_S + 10 * 365 * 86_400 }));
    expect(await verifyNow(token, clock)).toBe('accepted');
    clock.advance(TTL + SKEW + 1);
    expect(['invalid_token', 'token_expired']).toContain(await verifyNow(token, clock));
  });

  it('refuses an exp that parses to Infinity', async () => {
    const text = JSON.stringify(validClaims({ exp: 0 })).replace('"exp":0', '"exp":1e400');
    expect(JSON.parse(text).exp).toBe(Number.POSITIVE_INFINITY);
    expect(await verifyNow(await signedByUs(text))).toBe('invalid_token');
  });

  for (const [label, over] of [
    ['a string exp', { exp: String(START_S + TTL) }],
    ['a string iat', { iat: String(START_S) }],
    ['a null exp', { exp: null }],
    ['a future nbf', { nbf: START_S + 3600 }],
  ] as const) {
    it(`refuses ${label}`, async () => {
      const token = await signedByUs(validClaims(over));
      expect(await verifyNow(token)).toBe('invalid_token');
    });
  }
});

describe('verifyAccessToken: claims', () => {
  it('refuses a token for another issuer, even with our signature', async () => {
    for (const iss of ['urn:other:issuer', `${SETTINGS.tokenIssuer} `, [SETTINGS.tokenIssuer]]) {
      expect(await verifyNow(await signedByUs(validClaims({ iss }))), JSON.stringify(iss)).toBe(
        'invalid_token',
      );
    }
  });

  it('refuses a token for another audience, even with our signature', async () => {
    for (const aud of ['urn:other:clients', ['urn:other:clients'], [], `${SETTINGS.tokenAudience}/`]) {
      expect(await verifyNow(await signedByUs(validClaims({ aud }))), JSON.stringify(aud)).toBe(
        'invalid_token',
      );
    }
  });

  for (const claim of ['exp', 'iat', 'jti', 'sub', 'sid', 'iss', 'aud', 'username', 'roles']) {
    it(`refuses a token missing ${claim}, even with our signature`, async () => {
      const token = await signedByUs(without(validClaims(), claim));
      expect(await verifyNow(token)).toBe('invalid_token');
    });
  }

  const hostileIds: [string, unknown][] = [
    ['a number', 12345],
    ['null', null],
    ['an object', { S: 'user-1' }],
    ['an array', ['user-1']],
    ['an empty string', ''],
    ['an overlong string', 'a'.repeat(1000)],
    ['a string with a slash', 'user/1'],
    ['a string with a hash', 'user#1'],
    ['a string with a space', 'user 1'],
    ['a string with a NUL', 'user\u00001'],
    ['a string with a newline', 'user-1\n'],
    ['a string with a non-ASCII letter', 'usér-1'],
  ];
  for (const claim of ['sub', 'jti', 'sid']) {
    for (const [label, value] of hostileIds) {
      it(`refuses ${claim} that is ${label} (it becomes a store key)`, async () => {
        const token = await signedByUs(validClaims({ [claim]: value }));
        expect(await verifyNow(token)).toBe('invalid_token');
      });
    }
  }

  for (const [label, roles] of [
    ['a string', 'admin'],
    ['an object', { 0: 'admin' }],
    ['an array of numbers', [1]],
    ['an array holding null', [null]],
    ['null', null],
  ] as const) {
    it(`refuses roles that are ${label}`, async () => {
      const token = await signedByUs(validClaims({ roles }));
      expect(await verifyNow(token)).toBe('invalid_token');
    });
  }

  it('refuses a username that is not a string', async () => {
    for (const username of [42, null, ['alice'], { name: 'alice' }]) {
      const token = await signedByUs(validClaims({ username }));
      expect(await verifyNow(token), JSON.stringify(username)).toBe('invalid_token');
    }
  });
});

describe('verifyAccessToken: key rotation', () => {
  let older: StoredKey;
  let newer: StoredKey;
  beforeAll(async () => {
    older = await generateStoredKey(new Date(START_MS - 30 * 86_400_000));
    newer = await generateStoredKey(new Date(START_MS));
  });

  it('still verifies a token signed by the older key while it stays in the key set', async () => {
    const before = keySetSource(async () => ({ keys: [older] }));
    const after = keySetSource(async () => ({ keys: [newer, older] }));
    const oldToken = (await issueAccessToken(depsAt(undefined, before), SUBJECT)).token;
    const newToken = (await issueAccessToken(depsAt(undefined, after), SUBJECT)).token;

    expect(decodeProtectedHeader(oldToken).kid).toBe(older.kid);
    expect(decodeProtectedHeader(newToken).kid).toBe(newer.kid);
    expect(await outcomeOf(verifyAccessToken(depsAt(undefined, after), oldToken))).toBe('accepted');
    expect(await outcomeOf(verifyAccessToken(depsAt(undefined, after), newToken))).toBe('accepted');
  });

  it('refuses a token of a key once that key has left the key set', async () => {
    const before = keySetSource(async () => ({ keys: [older] }));
    const retired = keySetSource(async () => ({ keys: [newer] }));
    const oldToken = (await issueAccessToken(depsAt(undefined, before), SUBJECT)).token;
    expect(await outcomeOf(verifyAccessToken(depsAt(undefined, retired), oldToken))).toBe('invalid_token');
  });

  it('refuses a token signed by the newer key but labelled with the older kid', async () => {
    const both = keySetSource(async () => ({ keys: [newer, older] }));
    const signing = await both.signingKey();
    const token = await signEd25519(signing.privateKey, ourHeader({ kid: older.kid }), validClaims());
    expect(await outcomeOf(verifyAccessToken(depsAt(undefined, both), token))).toBe('invalid_token');
  });
});
