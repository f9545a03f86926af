/** The role every user holds from creation; a socket needs it to connect. */
export const DEFAULT_ROLE = 'user';
/** A role: 1-32 of `[a-z0-9_-]`. */
export const ROLE_PATTERN = /^[a-z0-9_-]{1,32}$/;
