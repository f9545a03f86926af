import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { accessRefs, accessStateFrom, revokedId } from './access.ts';
import { nowS } from './clock.ts';
import type { Deps } from './deps.ts';
import { AppError } from './errors.ts';
import { recordIpFailure } from './ip-failures.ts';
import { isOriginAllowed } from './origin.ts';
import { DEFAULT_ROLE } from './roles.ts';
import { batchGet, N, S, storeCall, unlessConditionFails } from './store.ts';
import { type AccessClaims, verifyAccessToken, verifyTicket } from './tokens.ts';

/** Where the client put its credential, in the order they are tried. */
export type Credential =
  | { kind: 'protocol'; token: string }
  | { kind: 'query'; token: string }
  | { kind: 'ticket'; ticket: string }
  | { kind: 'header'; token: string };

export interface HandshakeInput {
  readonly credential: Credential | undefined;
  /** Every Origin value sent (more than one is refused). */
  readonly origins: readonly string[];
  readonly ip: string;
  readonly connectionId: string;
}

export type DenyReason =
  | 'missing_token'
  | 'invalid_token'
  | 'token_expired'
  | 'ticket_used'
  | 'revoked'
  | 'origin'
  | 'blocked_user'
  | 'blocked_ip'
  | 'no_role';

export type HandshakeOutcome =
  | { readonly allow: true; readonly claims: AccessClaims }
  | { readonly allow: false; readonly status: 401 | 403; readonly reason: DenyReason };

/**
 * Decides a WebSocket handshake: the token (or ticket) must verify, the Origin must be
 * on the allowlist, and the token must not be revoked nor the user or IP blocked. The
 * store is read in ONE round trip (one BatchGetItem across the revocation and block
 * tables; a ticket's single-use write runs in parallel with it). A store failure
 * throws, which refuses the handshake (fail closed).
 */
export async function authorizeHandshake(deps: Deps, input: HandshakeInput): Promise<HandshakeOutcome> {
  const outcome = await decide(deps, input);
  if (!outcome.allow) {
    deps.audit('warn', 'ws.denied', {
      reason: outcome.reason,
      ip: input.ip,
      connectionId: input.connectionId,
    });
    if (input.ip) await recordIpFailure(deps, input.ip, 'refused_handshakes').catch(() => {});
  }
  return outcome;
}

const deny = (status: 401 | 403, reason: DenyReason): HandshakeOutcome => ({ allow: false, status, reason });

async function decide(deps: Deps, input: HandshakeInput): Promise<HandshakeOutcome> {
  // Origin first: a page from a foreign origin learns nothing about the token it sent.
  if (!originAllowed(deps.settings, input.origins)) return deny(403, 'origin');
  const cred = input.credential;
  if (!cred) return deny(401, 'missing_token');
  const verified = await verifyCredential(deps, cred);
  if (!verified.ok) return verified.denied;
  const { claims, ticketId } = verified;

  const subject = { claims, ip: input.ip || undefined };
  const now = nowS(deps.clock);
  const [rows, fresh] = await Promise.all([
    // Strongly consistent: a stale view could admit a token revoked or a user blocked a moment
    // ago, and no push path closes a socket that opens after it ran.
    batchGet(deps.db, accessRefs(deps, subject), { consistent: true }),
    ticketId === undefined ? Promise.resolve(true) : spendTicket(deps, ticketId, now),
  ]);
  if (!fresh) return deny(401, 'ticket_used');
  const state = accessStateFrom(subject, rows, now);
  if (state.revoked) return deny(401, 'revoked');
  if (state.ipBlock) return deny(403, 'blocked_ip');
  if (state.userBlock) return deny(403, 'blocked_user');
  if (!claims.roles.includes(DEFAULT_ROLE)) return deny(403, 'no_role');
  return { allow: true, claims };
}

/** One Origin at most, on the allowlist; none only with `allowMissingOrigin`. */
function originAllowed(
  settings: Pick<Deps['settings'], 'allowMissingOrigin' | 'allowedOrigins'>,
  origins: readonly string[],
): boolean {
  if (origins.length > 1) return false;
  const origin = origins[0];
  return origin === undefined
    ? settings.allowMissingOrigin
    : isOriginAllowed(origin, settings.allowedOrigins);
}

/** The claims of a token or ticket (and the ticket's id, to spend); a bad or expired one is a 401. */
async function verifyCredential(
  deps: Deps,
  cred: Credential,
): Promise<
  { ok: true; claims: AccessClaims; ticketId?: string | undefined } | { ok: false; denied: HandshakeOutcome }
> {
  try {
    if (cred.kind === 'ticket') {
      const t = await verifyTicket(deps, cred.ticket);
      return { ok: true, claims: t, ticketId: t.ticketId };
    }
    return { ok: true, claims: await verifyAccessToken(deps, cred.token) };
  } catch (err) {
    if (err instanceof AppError && (err.code === 'invalid_token' || err.code === 'token_expired')) {
      return { ok: false, denied: deny(401, err.code) };
    }
    throw err;
  }
}

/** Marks a ticket spent; false if it already was (a conditional put, so exactly one handshake wins). */
async function spendTicket(deps: Deps, ticketId: string, now: number): Promise<boolean> {
  const spent = await unlessConditionFails(
    storeCall(
      'spend ticket',
      (db) =>
        db.send(
          new PutItemCommand({
            TableName: deps.tables.revoked,
            Item: { id: S(revokedId.ticket(ticketId)), expiresAt: N(now + 60 + deps.settings.clockSkewS) },
            ConditionExpression: 'attribute_not_exists(id)',
          }),
        ),
      deps.db,
    ),
  );
  return spent !== undefined;
}
