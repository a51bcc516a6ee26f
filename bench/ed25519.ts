// Ed25519 sign/verify throughput: node:crypto with cached KeyObjects (what src/matrix/ed25519.ts uses)
// against @noble/curves, same seed and messages. Run: npx tsc -p tsconfig.json && node dist/bench/ed25519.js
import { randomBytes } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { createSigner, verifySignature } from '../src/matrix/ed25519.js';

const MESSAGE_COUNT = 64;
const MESSAGE_BYTES = 256; // about the size of a signed X-Matrix request JSON
const SECONDS_PER_ROW = 0.5;

const seed = new Uint8Array(32).map((_, i) => i + 1);
const messages = Array.from({ length: MESSAGE_COUNT }, () => new Uint8Array(randomBytes(MESSAGE_BYTES)));
const signer = createSigner(seed);
const publicKey = ed25519.getPublicKey(seed);

/** Operations per second of `operation(i)`, run in batches until SECONDS_PER_ROW have passed. */
function opsPerSecond(operation: (i: number) => unknown): number {
  for (let i = 0; i < 200; i++) operation(i % MESSAGE_COUNT); // warm-up
  let count = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < SECONDS_PER_ROW) {
    for (let i = 0; i < 100; i++, count++) operation(count % MESSAGE_COUNT);
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  }
  return count / elapsed;
}

const nodeSignatures = messages.map((message) => signer.sign(message));
const nobleSignatures = messages.map((message) => ed25519.sign(message, seed));
const identical = nodeSignatures.every((signature, i) => Buffer.from(signature).equals(Buffer.from(nobleSignatures[i]!)));
if (!identical) throw new Error('node:crypto and @noble/curves disagree on a signature: the comparison would be meaningless');

const rows = [
  {
    operation: 'sign',
    node: opsPerSecond((i) => signer.sign(messages[i]!)),
    noble: opsPerSecond((i) => ed25519.sign(messages[i]!, seed)),
  },
  {
    operation: 'verify',
    node: opsPerSecond((i) => verifySignature(publicKey, messages[i]!, nodeSignatures[i]!)),
    noble: opsPerSecond((i) => ed25519.verify(nobleSignatures[i]!, messages[i]!, publicKey)),
  },
];

const format = (n: number): string => Math.round(n).toLocaleString('en-US');
console.log(`Ed25519, ${MESSAGE_COUNT} messages of ${MESSAGE_BYTES} bytes, ${process.version}; signatures identical: ${identical}`);
console.log('');
console.log(`${'operation'.padEnd(10)}${'node:crypto ops/s'.padStart(20)}${'@noble/curves ops/s'.padStart(22)}${'node/noble'.padStart(12)}`);
for (const row of rows) {
  console.log(`${row.operation.padEnd(10)}${format(row.node).padStart(20)}${format(row.noble).padStart(22)}${`${(row.node / row.noble).toFixed(1)}x`.padStart(12)}`);
}
