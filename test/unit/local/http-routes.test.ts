import { describe, expect, it } from 'vitest';
import { compileRoute, decodePath, type HttpRoute, matchRoute } from '../../../local/http-routes.ts';

const handler: HttpRoute['handler'] = async () => ({ statusCode: 200 });
const routes = [
  'POST /auth/login',
  'GET /admin/users/{username}',
  'DELETE /admin/users/{username}/sessions/{sessionId}',
  'ANY /files/{proxy+}',
  'GET /a.b',
].map((routeKey) => compileRoute({ routeKey, handler }));

describe('HTTP API route matching', () => {
  it('matches method and path, and decodes each path parameter', () => {
    const found = matchRoute(routes, 'DELETE', '/admin/users/al%20ice/sessions/s-1');
    expect(found?.route.routeKey).toBe('DELETE /admin/users/{username}/sessions/{sessionId}');
    expect(found?.pathParameters).toEqual({ username: 'al ice', sessionId: 's-1' });
  });

  it('lets a greedy parameter take the rest of the path, for any method', () => {
    const found = matchRoute(routes, 'PATCH', '/files/a/b/c.txt');
    expect(found?.route.routeKey).toBe('ANY /files/{proxy+}');
    expect(found?.pathParameters).toEqual({ proxy: 'a/b/c.txt' });
  });

  it('gives a route without parameters an empty set of them', () => {
    expect(matchRoute(routes, 'POST', '/auth/login')?.pathParameters).toEqual({});
  });

  const misses: [string, string, string][] = [
    ['another method', 'GET', '/auth/login'],
    ['a trailing slash', 'POST', '/auth/login/'],
    ['a parameter across two segments', 'GET', '/admin/users/a/b'],
    ['an empty parameter', 'GET', '/admin/users/'],
    ['a dot taken literally, not as any character', 'GET', '/aXb'],
    ['a greedy parameter with nothing to take', 'GET', '/files/'],
    ['a prefix of a route', 'POST', '/auth'],
  ];
  for (const [name, method, path] of misses) {
    it(`matches nothing for ${name}`, () => {
      expect(matchRoute(routes, method, path)).toBeUndefined();
    });
  }

  it('takes the first matching route in the order given', () => {
    const first = compileRoute({ routeKey: 'GET /admin/users/{id}', handler });
    expect(matchRoute([first, ...routes], 'GET', '/admin/users/x')?.route).toBe(first);
  });

  it("gives '' for a parameter that does not decode", () => {
    expect(matchRoute(routes, 'GET', '/admin/users/%zz')?.pathParameters).toEqual({ username: '' });
  });
});

describe('path decoding', () => {
  it('decodes percent-encoding and refuses what is not valid', () => {
    expect(decodePath('/a%2Fb%C3%A9')).toBe('/a/bé');
    for (const bad of ['%', '%zz', '%ff', '/a%e2%82']) expect(decodePath(bad), bad).toBeUndefined();
  });
});
