// Canonical JSON of generated values against Synapse's own python canonicaljson, byte for byte.
import fc from 'fast-check';
import { canonicalJsonBytes } from '../../src/matrix/canonical-json.js';
import { testWithPython } from '../helpers/python-available.js';
import { runPython } from '../helpers/python-worker.js';

const SCRIPT = [
  'import sys, json, base64',
  'from canonicaljson import encode_canonical_json',
  'for line in sys.stdin:',
  '    print(base64.b64encode(encode_canonical_json(json.loads(line))).decode())',
].join('\n');

// Integers only within ±(2^53 − 1) (the spec's range); strings of any code point, astral ones included.
const SAFE = fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER });
const text = fc.string({ unit: 'grapheme', maxLength: 12 });
const { value } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, SAFE, text, fc.boolean(), fc.constant(null), tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.dictionary(text, tie('value'), { maxKeys: 5 }),
}));

testWithPython('300 generated values encode exactly as python canonicaljson encodes them', async () => {
  const values = fc.sample(fc.dictionary(text, value, { maxKeys: 6 }), { numRuns: 300, seed: 1414 });
  const output = await runPython(SCRIPT, values.map((v) => JSON.stringify(v)).join('\n') + '\n');
  const expected = output.trim().split('\n');
  expect(expected).toHaveLength(values.length);
  values.forEach((v, i) => expect(canonicalJsonBytes(v).toString('base64')).toBe(expected[i]));
});
