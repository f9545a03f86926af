import type { Deps } from './core/deps.ts';
import { login } from './core/login.ts';
import { warmUpPasswordCheck } from './core/passwords.ts';
import { httpRoute, json } from './edge/http.ts';
import { lambdaEntry } from './runtime.ts';

/** `POST /auth/login {username, password}` -> `200` token pair. */
export function makeLoginHandler(deps: Deps) {
  warmUpPasswordCheck();
  return httpRoute(deps.audit, async (req) => json(200, await login(deps, req.body(), req)));
}

export const handler = lambdaEntry(makeLoginHandler);
