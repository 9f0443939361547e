"""Pure tests: no broker, no sockets, no subprocess, no threads doing I/O, nothing written
outside tmp_path. They run in any order and need nothing installed but Python packages."""
