import { type Algorithm, hash, verify } from '@node-rs/argon2';
import { AppError } from './errors.ts';

/** argon2id at OWASP's recommended floor: 19 MiB memory, 2 passes, 1 lane. */
export const ARGON2_PARAMS = {
  // Algorithm is an ambient const enum (unusable under verbatimModuleSyntax): 2 is Argon2id.
  algorithm: 2 as Algorithm,
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1,
} as const;

export const PASSWORD_MIN = 12;
export const PASSWORD_MAX = 256;

/** Checks length in characters (code points), as users count them. */
export function validatePassword(password: unknown): string {
  if (typeof password !== 'string') throw new AppError('invalid_request', 'password must be a string');
  // Counted as stored: after NFC, so decomposed accents do not pad a short password.
  const normalized = password.normalize('NFC');
  const length = [...normalized].length;
  if (length < PASSWORD_MIN || length > PASSWORD_MAX) {
    throw new AppError('invalid_request', `password must be ${PASSWORD_MIN}-${PASSWORD_MAX} characters`);
  }
  return normalized;
}

export function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON2_PARAMS);
}

let dummyHash: Promise<string> | undefined;

/**
 * Verifies a password against a stored hash. With no stored hash (an unknown user) it
 * still runs a full argon2id verification against a dummy hash, so that an unknown
 * user and a wrong password cost the same time and look the same to the caller.
 */
export async function verifyPassword(storedHash: string | undefined, password: string): Promise<boolean> {
  if (storedHash === undefined) {
    dummyHash ??= hash('dummy password that never matches', ARGON2_PARAMS);
    await verify(await dummyHash, password).catch(() => false);
    return false;
  }
  try {
    return await verify(storedHash, password);
  } catch {
    return false;
  }
}

/** Computes the dummy hash ahead of the first login, so the first unknown user is not faster or slower. */
export function warmUpPasswordCheck(): void {
  dummyHash ??= hash('dummy password that never matches', ARGON2_PARAMS);
}
