import type { Socket } from 'node:net';

export function postRequest(url: string, path: string, headers: Record<string, string>, body: string): Buffer;

export class RawConnection {
  static open(url: string, onAnswer: (status: number) => void, onClose?: () => void): Promise<RawConnection>;
  constructor(socket: Socket, onAnswer: (status: number) => void, onClose: () => void);
  send(request: Buffer): void;
  close(): void;
}
