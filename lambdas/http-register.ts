import type { Deps } from './core/deps.ts';
import { register } from './core/login.ts';
import { httpRoute, json } from './edge/http.ts';
import { lambdaEntry } from './runtime.ts';

/** `POST /auth/register {username, password}` -> `201 {username}`. */
export function makeRegisterHandler(deps: Deps) {
  return httpRoute(deps.audit, async (req) => json(201, await register(deps, req.body(), req)));
}

export const handler = lambdaEntry(makeRegisterHandler);
