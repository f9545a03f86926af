import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2 } from 'aws-lambda';

export type HttpHandler = (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyResultV2>;

export interface HttpRoute {
  /** An HTTP API route key: `POST /auth/login`, `GET /admin/users/{username}`, `ANY /files/{proxy+}`. */
  readonly routeKey: string;
  readonly handler: HttpHandler;
}

export interface CompiledRoute {
  readonly method: string;
  readonly pattern: RegExp;
  readonly params: readonly string[];
  readonly routeKey: string;
  readonly handler: HttpHandler;
}

export interface RouteMatch {
  readonly route: CompiledRoute;
  /** Each `{name}` or `{name+}` of the route key, percent-decoded (`''` where it does not decode). */
  readonly pathParameters: Record<string, string>;
}

/** A route key as a pattern: `{name}` takes one path segment, `{name+}` the rest of the path. */
export function compileRoute(route: HttpRoute): CompiledRoute {
  const [method = '', path = ''] = route.routeKey.split(' ');
  const params: string[] = [];
  const source = path
    .split('/')
    .map((part) => {
      const greedy = /^\{(\w+)\+\}$/.exec(part);
      if (greedy?.[1]) {
        params.push(greedy[1]);
        return '(.+)';
      }
      const param = /^\{(\w+)\}$/.exec(part);
      if (param?.[1]) {
        params.push(param[1]);
        return '([^/]+)';
      }
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  return {
    method,
    pattern: new RegExp(`^${source}$`),
    params,
    routeKey: route.routeKey,
    handler: route.handler,
  };
}

/** The first route, in the order given, whose method (or `ANY`) and path match the request. */
export function matchRoute(
  routes: readonly CompiledRoute[],
  method: string | undefined,
  path: string,
): RouteMatch | undefined {
  for (const route of routes) {
    if (route.method !== 'ANY' && route.method !== method) continue;
    const match = route.pattern.exec(path);
    if (!match) continue;
    const pathParameters: Record<string, string> = {};
    route.params.forEach((name, i) => {
      pathParameters[name] = decodePath(match[i + 1] ?? '') ?? '';
    });
    return { route, pathParameters };
  }
  return undefined;
}

/** A percent-encoded path decoded, or undefined when it does not decode (`%`, `%zz`, `%ff`). */
export function decodePath(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}
