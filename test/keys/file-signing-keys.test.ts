// Signing keys read straight from the key files (doctor's path, no database): the first key of each file,
// compared by its bytes with the test vectors and with @noble/curves' signatures.
import { writeFileSync } from 'node:fs';
import { ed25519 } from '@noble/curves/ed25519.js';
import { FileSigningKeys } from '../../src/keys/file-signing-keys.js';
import { formatKeyFile, parseKeyFile } from '../../src/keys/key-files.js';
import { homeserversWithKeys, keyFileVectors, writeTempKeyFile } from '../helpers/keys.js';

describe('file signing keys', () => {
  test("each homeserver's first key, by its bytes: key ID, public key, scope and signatures", async () => {
    const { dendrite, mmr, synapse } = keyFileVectors();
    const first = parseKeyFile(mmr.file, 'mmr.key').keys[0]!;
    const second = parseKeyFile(dendrite.file, 'dendrite.key').keys[0]!;
    const keys = new FileSigningKeys(homeserversWithKeys(
      { name: 'a.example', signingKeyPath: writeTempKeyFile(formatKeyFile([first, second], 'mmr')) },
      { name: 'b.example', signingKeyPath: writeTempKeyFile(synapse.file) },
    ));
    const a = (await keys.activeKey('a.example'))!;
    expect(a).toMatchObject({ serverName: 'a.example', keyId: mmr.keyId, publicKey: mmr.publicKey, scope: ['m.requests'] });
    expect(Buffer.from(a.signer.publicKey)).toEqual(Buffer.from(mmr.publicKey, 'base64'));
    const message = Buffer.from('{"method":"GET"}');
    expect(Buffer.from(a.signer.sign(message))).toEqual(Buffer.from(ed25519.sign(message, first.seed)));
    const b = (await keys.activeKey('b.example'))!;
    expect(b).toMatchObject({ serverName: 'b.example', keyId: synapse.keyId, publicKey: synapse.publicKey });
  });

  test('undefined for a homeserver without signingKeyPath and for one not configured', async () => {
    const keys = new FileSigningKeys(homeserversWithKeys({ name: 'bare.example' }, { name: 'keyed.example', signingKeyPath: writeTempKeyFile(keyFileVectors().synapse.file) }));
    expect(await keys.activeKey('bare.example')).toBeUndefined();
    expect(await keys.activeKey('elsewhere.example')).toBeUndefined();
  });

  test('each file is read once: a file changed afterwards does not change the key', async () => {
    const { mmr, synapse } = keyFileVectors();
    const file = writeTempKeyFile(synapse.file);
    const keys = new FileSigningKeys(homeserversWithKeys({ name: 'once.example', signingKeyPath: file }));
    expect((await keys.activeKey('once.example'))!.publicKey).toBe(synapse.publicKey);
    writeFileSync(file, mmr.file);
    expect((await keys.activeKey('once.example'))!.publicKey).toBe(synapse.publicKey);
  });
});
