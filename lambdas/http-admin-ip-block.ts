import { blockIp, unblockIp } from './core/admin.ts';
import type { Deps } from './core/deps.ts';
import { roleRoute } from './edge/admin.ts';
import { noContent } from './edge/http.ts';
import { lambdaEntry } from './runtime.ts';

/** `POST /admin/ips/{ip}/block {duration_s, reason}` and `DELETE` of the same path (role admin). */
export function makeIpBlockHandler(deps: Deps) {
  return roleRoute(deps, ['admin'], async (req, caller) => {
    if (req.method === 'DELETE') await unblockIp(deps, caller, req.pathParameters.ip);
    else await blockIp(deps, caller, req.pathParameters.ip, req.body());
    return noContent();
  });
}

export const handler = lambdaEntry(makeIpBlockHandler);
