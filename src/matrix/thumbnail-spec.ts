// What a thumbnail request asks for (client-server API "GET /_matrix/client/v1/media/thumbnail"):
// one shape for the client routes, the federation routes, the outbound request and the stored rows.

export type ThumbnailMethod = 'crop' | 'scale';

export interface ThumbnailSpec {
  width: number;
  height: number;
  method: ThumbnailMethod;
  animated: boolean;
}
