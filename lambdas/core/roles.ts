/** The role every user holds from creation; a socket needs it to connect. */
export const DEFAULT_ROLE = 'user';
/** A role: 1-32 of `[a-z0-9_-]`. */
export const ROLE_PATTERN = /^[a-z0-9_-]{1,32}$/;

/** The roles a row stores: `DEFAULT_ROLE` where none are given (a string set cannot be empty). */
export const rolesOrDefault = (roles: readonly string[]): readonly string[] =>
  roles.length > 0 ? roles : [DEFAULT_ROLE];
