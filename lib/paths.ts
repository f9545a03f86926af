import { fileURLToPath } from 'node:url';

/** The repository root: entries, the lock file and the `.build` cache are found from here, whatever the cwd. */
export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
