import type { Deps } from './core/deps.ts';
import { httpRoute, json } from './edge/http.ts';
import { lambdaEntry } from './runtime.ts';

/** `GET /.well-known/jwks.json` -> the public keys that verify our tokens (never a private member). */
export function makeJwksHandler(deps: Deps) {
  return httpRoute(deps.audit, async () =>
    json(200, { keys: await deps.keys.publicKeys() }, { 'cache-control': 'public, max-age=300' }),
  );
}

export const handler = lambdaEntry(makeJwksHandler);
