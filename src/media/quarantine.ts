// Quarantine: flags in quarantined_media, which outlive the media row (a purged quarantined remote media
// is still never fetched again). Bytes stay, for evidence, until purged.
import type { Knex } from 'knex';
import type { CacheInvalidations } from '../db/cache-invalidations.js';
import { forbidden, invalidParam } from '../matrix/errors.js';
import type { AuditLog } from './audit-log.js';
import type { MediaStore } from './media-store.js';
import { assertWithinScope, confine, describeSelector, selectMedia, type AdminScope, type MediaSelector } from './media-selection.js';

type MediaRow = { server_name: string; media_id: string };
const mediaKey = (key: MediaRow): string => `${key.server_name}/${key.media_id}`;
type Changeable = Extract<MediaSelector, { kind: 'media' | 'user' | 'server' }>;

export class Quarantine {
  constructor(
    private readonly knex: Knex,
    private readonly media: MediaStore,
    private readonly hosted: string[],
    private readonly audit: AuditLog,
    private readonly invalidations: CacheInvalidations,
    private readonly now: () => number = Date.now,
  ) {}

  /** Quarantines what the selector covers; the count of media it covers. */
  async quarantine(selector: MediaSelector, scope: AdminScope): Promise<number> {
    assertWithinScope(selector, scope, (name) => this.hosted.includes(name));
    const keys = await this.knex.transaction(async (trx) => {
      const covered: MediaRow[] = selector.kind === 'media'
        ? [await this.singleKey(trx, selector, scope)]
        : await selectMedia(trx, selector, scope, this.hosted).select('m.server_name', 'm.media_id');
      const rows = covered.map((k) => ({ ...k, quarantined_ts: this.now(), quarantined_by: scope.actor }));
      for (let i = 0; i < rows.length; i += 1000) {
        await trx('quarantined_media').insert(rows.slice(i, i + 1000)).onConflict(['server_name', 'media_id']).ignore();
      }
      await this.invalidations.publish(trx, 'media', covered.map(mediaKey));
      return covered;
    });
    // Again after commit: a request here between the publish and the commit may have cached the old row.
    for (const key of keys) this.media.forget(mediaKey(key));
    await this.audit.record(scope, { action: 'quarantine', target: describeSelector(selector), count: keys.length, bytes: 0 });
    return keys.length;
  }

  async unquarantine(selector: MediaSelector, scope: AdminScope): Promise<number> {
    if (!['media', 'user', 'server'].includes(selector.kind)) throw invalidParam('Only media, users and servers can be unquarantined');
    const target = selector as Changeable;
    const removed = await this.knex.transaction(async (trx) => {
      const flagged = trx('quarantined_media as q');
      if (target.kind === 'media') {
        const key = await this.singleKey(trx, target, scope);
        flagged.where({ 'q.server_name': key.server_name, 'q.media_id': key.media_id });
      } else if (target.kind === 'server') {
        assertWithinScope(target, scope, (name) => this.hosted.includes(name));
        confine(trx, flagged.where('q.server_name', target.serverName), 'q', scope, this.hosted);
      } else {
        assertWithinScope(target, scope, (name) => this.hosted.includes(name));
        const users = selectMedia(trx, target, scope, this.hosted).select('m.server_name', 'm.media_id');
        flagged.whereIn(['q.server_name', 'q.media_id'], users);
      }
      const keys: MediaRow[] = await flagged.select('q.server_name', 'q.media_id');
      for (let i = 0; i < keys.length; i += 1000) {
        await trx('quarantined_media').whereIn(['server_name', 'media_id'], keys.slice(i, i + 1000).map((k) => [k.server_name, k.media_id])).delete();
      }
      await this.invalidations.publish(trx, 'media', keys.map(mediaKey));
      return keys;
    });
    for (const key of removed) this.media.forget(mediaKey(key));
    await this.audit.record(scope, { action: 'unquarantine', target: describeSelector(selector), count: removed.length, bytes: 0 });
    return removed.length;
  }

  /** One media, known or not (quarantining unknown remote media stops it being fetched); 403 outside the scope. */
  private async singleKey(trx: Knex.Transaction, selector: Extract<MediaSelector, { kind: 'media' }>, scope: AdminScope) {
    assertWithinScope(selector, scope, (name) => this.hosted.includes(name));
    const key = { server_name: selector.serverName, media_id: selector.mediaId };
    if (scope.homeserver !== null) {
      const reachable = await confine(trx, trx.select('k.server_name').fromRaw(trx.raw('(SELECT ?::text AS server_name, ?::text AS media_id) AS k', [key.server_name, key.media_id])), 'k', scope, this.hosted);
      if (reachable.length === 0) throw forbidden('None of your homeserver\'s users fetched this remote media');
    }
    return key;
  }
}
