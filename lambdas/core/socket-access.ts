import { type AccessState, type AccessSubject, accessRefs, accessStateFrom } from './access.ts';
import type { Deps } from './deps.ts';
import { accessOf, grantRef } from './grants.ts';
import type { Access } from './rooms.ts';
import { type SocketRow, socketRowFrom, socketRowKey } from './socket-rows.ts';
import { batchGet } from './store.ts';
import type { ClosingReason } from './wire.ts';

/**
 * Why an open socket must be closed, or undefined while it may stay open: the one rule of
 * the frame path and the sweeper. `live` is the token its socket row holds now (undefined
 * when the row is gone, which counts as revoked); `state`, that token's and its user's rows.
 */
export function closeReason(
  live: { readonly exp: number } | undefined,
  state: AccessState,
  nowSeconds: number,
  clockSkewS: number,
): ClosingReason | undefined {
  if (!live || state.revoked) return 'token_revoked';
  if (state.userBlock) return 'blocked';
  if (live.exp + clockSkewS <= nowSeconds) return 'token_expired';
  return undefined;
}

/** A socket as its rows say now: see `readSocketAccess`. */
export interface SocketAccess {
  /** The socket row, undefined when it is gone. */
  readonly row: SocketRow | undefined;
  /** Why the socket must be closed (`closeReason`), if it must. */
  readonly closeReason: ClosingReason | undefined;
  /** The user's grant to the `private:` room asked for, if one was and the user has it. */
  readonly grant: Access | undefined;
}

/** The socket whose rows are read: its id, its user and the token it was judged by. */
export interface SocketSubject {
  readonly connectionId: string;
  readonly username: string;
  readonly claims: NonNullable<AccessSubject['claims']>;
}

/**
 * Reads in one BatchGetItem what decides whether a socket may still act: its socket row,
 * its token's revocations and its user's block (`accessRefs`) and, for `grantRoom`, the
 * user's grant to that `private:` room; and judges them with `closeReason`.
 */
export async function readSocketAccess(
  deps: Pick<Deps, 'db' | 'tables' | 'settings'>,
  socket: SocketSubject,
  grantRoom: string | undefined,
  options: { readonly consistent: boolean; readonly nowSeconds: number },
): Promise<SocketAccess> {
  const subject = { claims: socket.claims, username: socket.username };
  const [item, ...accessRows] = await batchGet(
    deps.db,
    [
      { table: deps.tables.connections, key: socketRowKey(socket.connectionId) },
      ...accessRefs(deps, subject),
      // Last, so that the access rows before it are laid out as accessStateFrom reads them.
      ...(grantRoom ? [grantRef(deps, grantRoom, socket.username)] : []),
    ],
    { consistent: options.consistent },
  );
  const row = item && socketRowFrom(item);
  const state = accessStateFrom(subject, accessRows, options.nowSeconds);
  return {
    row,
    closeReason: closeReason(row, state, options.nowSeconds, deps.settings.clockSkewS),
    grant: grantRoom ? accessOf(accessRows.at(-1)) : undefined,
  };
}
