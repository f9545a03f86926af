// npm's postinstall: fetches the linux-arm64 argon2 package that the Lambda bundles carry
// (lib/argon2.ts) while the install is online anyway, so that tests, synth and the bench
// need no network afterwards. Plain JavaScript, since it runs before anything is built.
import { fileURLToPath } from 'node:url';

let tsImport;
try {
  ({ tsImport } = await import('tsx/esm/api'));
} catch {
  // An install without devDependencies cannot synth either; nothing to prepare.
  process.stderr.write('argon2 for Lambda: skipped (tsx is not installed)\n');
  process.exit(0);
}

const { ensureArgon2Arm64, argon2Version } = await tsImport('../lib/argon2.ts', import.meta.url);
try {
  const prefix = ensureArgon2Arm64();
  process.stderr.write(`argon2 for Lambda: @node-rs/argon2@${argon2Version()} linux-arm64 in ${prefix}\n`);
} catch (err) {
  // Not fatal: the local system and its tests do not need it; synth says how to fetch it later.
  process.stderr.write(`warning: ${err instanceof Error ? err.message : String(err)}\n`);
  process.stderr.write(`(from ${fileURLToPath(import.meta.url)}; run "npm run postinstall" to retry)\n`);
}
