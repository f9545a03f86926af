import type { Credential, HandshakeInput } from '../core/handshake.ts';
import { BEARER } from '../core/tokens.ts';
import { headerValues, offeredProtocols, queryValues, sourceIp } from './ws.ts';
import type { WsAuthorizerEvent } from './ws-types.ts';

/** The token, tried in the spec's order: subprotocol `jwt, <token>`, `?token=` or `?ticket=`, then `Authorization: Bearer`. */
export function credentialOf(event: WsAuthorizerEvent): Credential | undefined {
  const protocols = offeredProtocols(event);
  if (protocols.includes('jwt')) {
    const token = protocols.find((p) => p !== 'jwt');
    if (token) return { kind: 'protocol', token };
  }
  const tokens = queryValues(event, 'token');
  if (tokens.length > 0) return { kind: 'query', token: tokens.length === 1 ? (tokens[0] ?? '') : '' };
  const tickets = queryValues(event, 'ticket');
  if (tickets.length > 0) return { kind: 'ticket', ticket: tickets.length === 1 ? (tickets[0] ?? '') : '' };
  const auth = headerValues(event, 'authorization');
  const m = auth.length === 1 ? BEARER.exec(auth[0] ?? '') : null;
  if (auth.length > 0) return { kind: 'header', token: m?.[1] ?? '' };
  return undefined;
}

/** A `$connect` authorizer event as the domain sees a handshake: credential, every Origin, IP, connection. */
export function handshakeOf(event: WsAuthorizerEvent): HandshakeInput {
  return {
    credential: credentialOf(event),
    origins: headerValues(event, 'origin').flatMap((v) => v.split(',').map((o) => o.trim())),
    ip: sourceIp(event),
    connectionId: event.requestContext.connectionId,
  };
}
