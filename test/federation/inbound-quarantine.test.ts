// Quarantined local media is 404 M_NOT_FOUND to other servers too (download and thumbnail, stable and
// unstable paths), and served again once unquarantined.
import { DOWNLOAD, errcodeOf, IMAGE_ID, MEDIA_ID, send, service, sign, useInboundPeers } from '../helpers/inbound-peers.js';

useInboundPeers();

const THUMBNAIL = `/_matrix/federation/v1/media/thumbnail/${IMAGE_ID}?width=32&height=32&method=crop`;
const PATHS = [DOWNLOAD, `/_matrix/federation/unstable/org.matrix.msc3916.v2/media/download/${MEDIA_ID}`, THUMBNAIL];
const PROVIDER = { actor: 'test', homeserver: null };

test('quarantine hides media from federation; unquarantine restores it', async () => {
  for (const uri of PATHS) expect((await send({ path: uri, authorization: await sign({ uri }) })).status).toBe(200);
  const { quarantine } = service.services.admin;
  for (const mediaId of [MEDIA_ID, IMAGE_ID]) await quarantine.quarantine({ kind: 'media', serverName: 'hs.test', mediaId }, PROVIDER);
  for (const uri of PATHS) {
    const received = await send({ path: uri, authorization: await sign({ uri }) });
    expect([uri, received.status, errcodeOf(received)]).toEqual([uri, 404, 'M_NOT_FOUND']);
  }
  for (const mediaId of [MEDIA_ID, IMAGE_ID]) await quarantine.unquarantine({ kind: 'media', serverName: 'hs.test', mediaId }, PROVIDER);
  for (const uri of PATHS) expect((await send({ path: uri, authorization: await sign({ uri }) })).status).toBe(200);
});
