"""The notifier's pure logic: the WebSocket protocol, token validation, what each event
means to a screen, the per-user stream (seq, epoch, resume) and the per-connection
byte budget. Nothing here imports a broker, a session or a socket."""
