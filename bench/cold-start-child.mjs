// One cold start: a fresh `node` imports one Lambda bundle and handles one event, as the
// Lambda runtime does on a new container. Prints the timings as JSON on stdout.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const [bundle, eventFile] = process.argv.slice(2);
const started = performance.now();
const mod = await import(pathToFileURL(bundle).href);
const imported = performance.now();
const handler = mod.handler ?? mod.default?.handler;
const event = JSON.parse(readFileSync(eventFile, 'utf8'));
const result = await handler(event);
const handled = performance.now();
const outcome =
  result?.statusCode ?? result?.policyDocument?.Statement?.[0]?.Effect ?? (result ? 'ok' : 'none');
process.stdout.write(
  `\n${JSON.stringify({ bootMs: started, importMs: imported - started, handleMs: handled - imported, outcome })}\n`,
);
// Lambda freezes the container after the response; here, open sockets must not hold the process.
process.exit(0);
