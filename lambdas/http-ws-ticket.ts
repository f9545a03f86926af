import { authenticate, bearerToken } from './core/auth.ts';
import type { Deps } from './core/deps.ts';
import { issueTicket } from './core/tokens.ts';
import { httpRoute, json } from './edge/http.ts';
import { lambdaEntry } from './runtime.ts';

/**
 * `POST /auth/ws-ticket` (Bearer) -> `200 {ticket, expires_in}`: a single-use, 30-second
 * stand-in for the access token at one handshake (`?ticket=`), so long-lived tokens
 * stay out of URLs and access logs.
 */
export function makeWsTicketHandler(deps: Deps) {
  return httpRoute(deps.audit, async (req) => {
    const claims = await authenticate(deps, bearerToken(req.headers.authorization));
    const { ticket, expiresIn } = await issueTicket(deps, claims);
    return json(200, { ticket, expires_in: expiresIn });
  });
}

export const handler = lambdaEntry(makeWsTicketHandler);
