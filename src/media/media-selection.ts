// Which media an admin operation covers, and the confinement of a hosted homeserver's admins: their
// homeserver's local media, and remote media their users fetched. Every admin flow selects through here.
import type { Knex } from 'knex';
import { forbidden } from '../matrix/errors.js';

/** Who acts: a provider-wide admin (homeserver null) or an admin of one hosted homeserver. */
export interface AdminScope {
  /** A user ID, or "shared secret" / "cli": never a token. */
  actor: string;
  homeserver: string | null;
}

export type MediaSelector =
  | { kind: 'media'; serverName: string; mediaId: string }
  | { kind: 'user'; userId: string; beforeTs?: number }
  | { kind: 'server'; serverName: string; beforeTs?: number }
  /** Remote media stored (downloaded) before beforeTs. */
  | { kind: 'remote'; beforeTs: number }
  /** Media not accessed since beforeTs; local media only with includeLocal. */
  | { kind: 'old'; beforeTs: number; includeLocal: boolean }
  | { kind: 'quarantined' };

export interface MediaKey { serverName: string; mediaId: string }

const notYours = () => forbidden('This media belongs to another homeserver than the one you administer');

export function serverOfUserId(userId: string): string {
  return userId.slice(userId.indexOf(':') + 1);
}

/** Refuses (403) selectors outside a homeserver admin's reach before anything is read or changed. */
export function assertWithinScope(selector: MediaSelector, scope: AdminScope, isHosted: (serverName: string) => boolean): void {
  const hs = scope.homeserver;
  if (hs === null) return;
  switch (selector.kind) {
    case 'media':
    case 'server':
      if (isHosted(selector.serverName) && selector.serverName !== hs) throw notYours();
      return;
    case 'user':
      if (serverOfUserId(selector.userId) !== hs) throw forbidden('You may only act on users of the homeserver you administer');
      return;
    case 'remote':
    case 'old':
      throw forbidden('Only media repository administrators may purge the whole remote media cache');
    case 'quarantined':
      return;
  }
}

/**
 * Rows of `media m` the selector and scope cover. `hosted`: every hosted homeserver's name (local
 * media is what belongs to one of them).
 */
export function selectMedia(knex: Knex, selector: MediaSelector, scope: AdminScope, hosted: string[]): Knex.QueryBuilder {
  const query = knex('media as m');
  switch (selector.kind) {
    case 'media':
      query.where({ 'm.server_name': selector.serverName, 'm.media_id': selector.mediaId });
      break;
    case 'user':
      query.where({ 'm.user_id': selector.userId, 'm.is_remote': false });
      if (selector.beforeTs !== undefined) query.where('m.created_ts', '<', selector.beforeTs);
      break;
    case 'server':
      query.where('m.server_name', selector.serverName);
      if (selector.beforeTs !== undefined) query.where('m.created_ts', '<', selector.beforeTs);
      break;
    case 'remote':
      query.where('m.is_remote', true).where('m.stored_ts', '<', selector.beforeTs);
      break;
    case 'old':
      query.whereRaw('COALESCE(m.last_access_ts, m.stored_ts, m.created_ts) < ?', [selector.beforeTs]);
      if (!selector.includeLocal) query.where('m.is_remote', true);
      break;
    case 'quarantined':
      query.whereExists(knex.select(knex.raw('1')).from('quarantined_media as q').whereRaw('q.server_name = m.server_name AND q.media_id = m.media_id'));
      break;
  }
  return confine(knex, query, 'm', scope, hosted);
}

/** Limits rows of table `alias` (with server_name, media_id) to what `scope` may touch. */
export function confine(knex: Knex, query: Knex.QueryBuilder, alias: string, scope: AdminScope, hosted: string[]): Knex.QueryBuilder {
  const hs = scope.homeserver;
  if (hs === null) return query;
  return query.where((w) => {
    w.where(`${alias}.server_name`, hs).orWhere((remote) => {
      remote.whereNotIn(`${alias}.server_name`, hosted).whereExists(
        knex.select(knex.raw('1')).from('remote_media_fetchers as f')
          .whereRaw(`f.server_name = ${alias}.server_name AND f.media_id = ${alias}.media_id`).where('f.homeserver', hs),
      );
    });
  });
}

export function describeSelector(selector: MediaSelector): string {
  switch (selector.kind) {
    case 'media': return `mxc://${selector.serverName}/${selector.mediaId}`;
    case 'user': return selector.userId + (selector.beforeTs === undefined ? '' : ` before ${selector.beforeTs}`);
    case 'server': return selector.serverName + (selector.beforeTs === undefined ? '' : ` before ${selector.beforeTs}`);
    case 'remote': return `remote media stored before ${selector.beforeTs}`;
    case 'old': return `media not accessed since ${selector.beforeTs}${selector.includeLocal ? ' (local too)' : ''}`;
    case 'quarantined': return 'quarantined media';
  }
}
