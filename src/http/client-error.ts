// Requests node's HTTP parser refuses never reach express; they still get a Matrix error body, with the
// status node would have sent (431 for oversized headers, 400 for bad framing or methods).
import type { Socket } from 'node:net';

export function answerClientError(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, reason, message] = refusal(error.code);
  const body = JSON.stringify({ errcode: 'M_UNKNOWN', error: message });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

function refusal(code: string | undefined): [number, string, string] {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'Request Header Fields Too Large', 'The request headers are too large'];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, 'Request Timeout', 'The request took too long to arrive'];
    case 'HPE_INVALID_METHOD':
      return [400, 'Bad Request', 'The request method is not valid HTTP'];
    default:
      return [400, 'Bad Request', 'The request is not valid HTTP'];
  }
}
