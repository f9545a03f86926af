import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { hash, verify } from '@node-rs/argon2';
import bcrypt from 'bcryptjs';
import { importJWK, jwtVerify, SignJWT } from 'jose';
import jwt from 'jsonwebtoken';
import type { Deps } from '../lambdas/core/deps.ts';
import { ARGON2_PARAMS } from '../lambdas/core/passwords.ts';
import { localTableNames } from '../lambdas/core/tables.ts';
import { issueAccessToken, verifyAccessToken } from '../lambdas/core/tokens.ts';
import { makeAuthorizerHandler } from '../lambdas/ws-authorizer.ts';
import { localConfig } from '../local/config.ts';
import { fileKeySource } from '../local/key-file.ts';
import { authorizerEvent, connectionInfo } from './events.ts';
import { fmt, median, now, ratio, type Section, table, timed } from './support.ts';

export interface AuthResult {
  readonly oursVerifyPerS: number;
  readonly hs256VerifyPerS: number;
  readonly argon2Ms: { hash: number; verify: number };
  readonly bcryptMs: { hash: number; verify: number };
  readonly authorizerCpuUs: number;
  readonly section: Section;
}

/** Operations per second of `op`, run for about `ms` milliseconds after a short warm-up. */
async function perSecond(op: () => unknown, ms = 1500): Promise<number> {
  for (let i = 0; i < 200; i++) await op();
  let count = 0;
  const start = now();
  while (now() - start < ms) {
    for (let i = 0; i < 50; i++) await op();
    count += 50;
  }
  return count / ((now() - start) / 1000);
}

async function medianMs(times: number, op: () => Promise<unknown>): Promise<number> {
  await op();
  const samples: number[] = [];
  for (let i = 0; i < times; i++) samples.push((await timed(op)).ms);
  return median(samples);
}

/** A DynamoDB client that answers every call from memory: the SDK's own work stays, the network goes. */
function noIoClient(): DynamoDBClient {
  const db = new DynamoDBClient({ region: 'local', credentials: { accessKeyId: 'l', secretAccessKey: 'l' } });
  db.middlewareStack.add(() => async () => ({ output: { Responses: {}, $metadata: {} }, response: {} }), {
    step: 'initialize',
    name: 'noIo',
  });
  return db;
}

/**
 * Measurement 5: token verification per second (ours: EdDSA through verifyAccessToken, with
 * every claim rule) next to jsonwebtoken HS256, password hashing at our argon2id parameters next
 * to bcrypt cost 12 (bcryptjs, pure JS), and the authorizer's CPU per handshake without I/O.
 */
export async function measureAuth(): Promise<AuthResult> {
  const settings = localConfig({ DATA_DIR: ':memory:' }).settings;
  const clock = { now: () => Date.now() };
  const keys = fileKeySource(undefined);
  const tokenDeps = { settings, keys, clock };
  const { token } = await issueAccessToken(tokenDeps, {
    sub: 'bench-sub',
    username: 'bench',
    roles: ['user'],
    sid: 'bench-sid',
  });
  const figures: AuthFigures = {
    ...(await measureEdDsa(tokenDeps, token)),
    ...(await measureHs256(settings)),
    ...(await measurePasswords()),
    ...(await measureAuthorizerCpu({ settings, keys, clock }, token)),
  };
  return {
    oursVerifyPerS: figures.oursVerifyPerS,
    hs256VerifyPerS: figures.hs256VerifyPerS,
    argon2Ms: figures.argon2Ms,
    bcryptMs: figures.bcryptMs,
    authorizerCpuUs: figures.authorizerCpuUs,
    section: { title: 'Auth costs', markdown: authMarkdown(figures), failures: [] },
  };
}

/** What the section shows: the result's figures and those given for scale. */
interface AuthFigures extends Omit<AuthResult, 'section'> {
  readonly bareEdDsaPerS: number;
  readonly joseHsPerS: number;
  readonly handshakesPerS: number;
}

type TokenDeps = Pick<Deps, 'settings' | 'keys' | 'clock'>;

/** Our access token verified with every claim rule, and by jose alone with the algorithm pinned. */
async function measureEdDsa(tokenDeps: TokenDeps, token: string) {
  const oursVerifyPerS = await perSecond(() => verifyAccessToken(tokenDeps, token));
  const [jwk] = await tokenDeps.keys.publicKeys();
  if (!jwk) throw new Error('no public key');
  const key = await importJWK(jwk, 'EdDSA');
  const bareEdDsaPerS = await perSecond(() => jwtVerify(token, key, { algorithms: ['EdDSA'] }));
  return { oursVerifyPerS, bareEdDsaPerS };
}

/** The usual pick: an HS256 token verified by jsonwebtoken, and by jose for scale. */
async function measureHs256(settings: Deps['settings']) {
  const secret = 'a-shared-secret-of-reasonable-length-0123456789';
  const claims = { username: 'bench', roles: ['user'], sid: 'bench-sid', jti: 'j' };
  const hsToken = jwt.sign(claims, secret, {
    algorithm: 'HS256',
    expiresIn: 900,
    issuer: settings.tokenIssuer,
    audience: settings.tokenAudience,
    subject: 'bench-sub',
  });
  const hs256VerifyPerS = await perSecond(() =>
    jwt.verify(hsToken, secret, {
      algorithms: ['HS256'],
      issuer: settings.tokenIssuer,
      audience: settings.tokenAudience,
    }),
  );
  const hsKey = new TextEncoder().encode(secret);
  const joseHs = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer(settings.tokenIssuer)
    .setAudience(settings.tokenAudience)
    .setExpirationTime('15m')
    .sign(hsKey);
  const joseHsPerS = await perSecond(() =>
    jwtVerify(joseHs, hsKey, {
      algorithms: ['HS256'],
      issuer: settings.tokenIssuer,
      audience: settings.tokenAudience,
    }),
  );
  return { hs256VerifyPerS, joseHsPerS };
}

/** Median hash and verify times: argon2id at our parameters, bcrypt cost 12. */
async function measurePasswords() {
  const password = 'correct horse battery staple';
  const argonHash = await hash(password, ARGON2_PARAMS);
  const argon2Ms = {
    hash: await medianMs(5, () => hash(password, ARGON2_PARAMS)),
    verify: await medianMs(5, () => verify(argonHash, password)),
  };
  const bcryptHash = await bcrypt.hash(password, 12);
  const bcryptMs = {
    hash: await medianMs(3, () => bcrypt.hash(password, 12)),
    verify: await medianMs(3, () => bcrypt.compare(password, bcryptHash)),
  };
  return { argon2Ms, bcryptMs };
}

/** The authorizer's CPU per handshake: the real handler, a real token, a store that answers from memory. */
async function measureAuthorizerCpu(tokenDeps: TokenDeps, token: string) {
  const deps: Deps = {
    ...tokenDeps,
    db: noIoClient(),
    tables: localTableNames(),
    audit: () => {},
  };
  const authorize = makeAuthorizerHandler(deps);
  const events = Array.from({ length: 2200 }, () => authorizerEvent(connectionInfo(), token));
  for (const e of events.slice(0, 200)) {
    const r = await authorize(e);
    if (r.policyDocument.Statement[0]?.Effect !== 'Allow') throw new Error('the authorizer did not allow');
  }
  const before = process.cpuUsage();
  const wallStart = now();
  for (const e of events.slice(200)) await authorize(e);
  const wallMs = now() - wallStart;
  const cpu = process.cpuUsage(before);
  const handshakes = events.length - 200;
  deps.db.destroy();
  return {
    authorizerCpuUs: (cpu.user + cpu.system) / handshakes,
    handshakesPerS: handshakes / (wallMs / 1000),
  };
}

function authMarkdown(f: AuthFigures): string {
  const { argon2Ms, bcryptMs } = f;
  return [
    table(
      ['what', 'ours', 'the usual pick', 'ours ÷ usual'],
      [
        [
          'access token verifications/s (one core)',
          `${fmt(f.oursVerifyPerS)} (EdDSA, \`verifyAccessToken\`: every claim rule)`,
          `${fmt(f.hs256VerifyPerS)} (\`jsonwebtoken\` HS256)`,
          ratio(f.oursVerifyPerS, f.hs256VerifyPerS),
        ],
        [
          '  for scale: jose alone',
          `${fmt(f.bareEdDsaPerS)} (EdDSA, \`jwtVerify\`, algorithm pinned only)`,
          `${fmt(f.joseHsPerS)} (jose HS256)`,
          ratio(f.bareEdDsaPerS, f.joseHsPerS),
        ],
        [
          'password hash, ms',
          `${fmt(argon2Ms.hash)} (argon2id, ${ARGON2_PARAMS.memoryCost / 1024} MiB, t=${ARGON2_PARAMS.timeCost}, p=${ARGON2_PARAMS.parallelism})`,
          `${fmt(bcryptMs.hash)} (bcrypt cost 12, bcryptjs)`,
          ratio(argon2Ms.hash, bcryptMs.hash),
        ],
        [
          'password verify, ms',
          fmt(argon2Ms.verify),
          fmt(bcryptMs.verify),
          ratio(argon2Ms.verify, bcryptMs.verify),
        ],
        [
          'authorizer CPU per handshake (no I/O)',
          `${fmt(f.authorizerCpuUs)} µs (${fmt(f.handshakesPerS)} handshakes/s on one core)`,
          '',
          '',
        ],
      ],
    ),
    '',
    'Verification runs back to back on one core for 1.5 s after a warm-up. The usual pick, HS256, shares ' +
      'one secret between every service that verifies and every one that signs; ours verifies with public ' +
      'keys only (the authorizer cannot mint tokens). bcryptjs is pure JavaScript, slower than the native ' +
      '`bcrypt` package (about 30% by its README), so native bcrypt cost 12 would take roughly three quarters ' +
      `of the figure shown: still about ${fmt(bcryptMs.hash / 1.3 / argon2Ms.hash, 2)}× our argon2id time at these parameters. Slower is the point of a ` +
      "password hash; what matters is the attacker's cost per guess, where argon2id's 19 MiB of memory " +
      'per hash is what GPUs pay for, and the login latency users feel, which these figures show. The authorizer figure ' +
      'is `process.cpuUsage` around the real handler (origin check, token verify, decision, building the ' +
      "BatchGetItem through the SDK's middleware) with a DynamoDB client that answers from memory.",
  ].join('\n');
}
