#!/usr/bin/env python3
"""Starting and stopping roomd: --help/--version, bad options, config files, and a graceful
shutdown that says goodbye to every client."""

import os
import signal
import socket
import subprocess
import tempfile
import time

from harness import (ROOMD, RoomdTestCase, Server, bye_line, free_port, main, welcome_line)


def run_roomd(*args, timeout=5):
    """Run roomd to completion; a daemon that starts anyway is killed and reported."""
    try:
        return subprocess.run([ROOMD] + list(args), stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("roomd %s did not exit within %ss" % (" ".join(args), timeout))


class CommandLine(RoomdTestCase):

    # Valid ports of its own for every run, so a bad option test never collides with a server.
    def safe_args(self):
        return ["--bind=127.0.0.1", "--port=%d" % free_port(), "--websocket-port=0",
                "--admin-port=0"]

    def test_help(self):
        result = run_roomd("--help")
        self.assertEqual(result.returncode, 0, result.stderr)
        out = (result.stdout + result.stderr).decode()
        self.assertIn("--port", out)  # decision: the help lists the options as --key

    def test_version(self):
        result = run_roomd("--version")
        self.assertEqual(result.returncode, 0, result.stderr)
        out = (result.stdout + result.stderr).decode()
        self.assertRegex(out, r"\d+\.\d+")

    def test_bad_options(self):
        for arg, key in [("--nope=1", "nope"), ("--port=abc", "port"), ("--port=70000", "port"),
                         ("--workers=-1", "workers"), ("--max-line=lots", "max"),
                         ("--announcements=maybe", "announcements"),
                         ("--log-level=loud", "log")]:
            with self.subTest(arg=arg):
                result = run_roomd(*(self.safe_args() + [arg]))
                self.assertNotEqual(result.returncode, 0)
                self.assertIn(key, result.stderr.decode().replace("_", "-"))
                self.assertNotIn("roomd ready", result.stderr.decode())


class Spelling(RoomdTestCase):

    def test_underscores_and_dashes_on_the_command_line(self):
        server = self.start_server(extra_args=["--welcome_message=Hi under", "--default_room="])
        self.assertLine(self.client(server).welcome_raw, welcome_line(None, "Hi under"))


class ConfigFile(RoomdTestCase):

    def write_config(self, text):
        fd, path = tempfile.mkstemp(prefix="roomd-test-", suffix=".conf")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        self.addCleanup(os.unlink, path)
        return path

    def test_config_file_and_override(self):
        file_port = free_port()
        path = self.write_config(
            "# roomd test configuration\n"
            "\n"
            "port = %d\n"
            "   # an indented comment\n"
            "welcome_message = Hello from the file\n"
            "starting_rooms = defaultRoom,fileRoom\n"
            "default_room=fileRoom\n"
            "announcements = false\n" % file_port)
        # The harness passes --port (and the rest) on the command line: it must win.
        server = self.start_server(config=path, default_room="defaultRoom")
        self.assertNotEqual(server.port, file_port)
        c = self.client(server)
        self.assertLine(c.welcome_raw, welcome_line("defaultRoom", "Hello from the file"))
        self.assertOK(c, "roomChange fileRoom", True)
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", file_port), timeout=2).close()

    def test_bad_config_file(self):
        path = self.write_config("no_such_key = 1\n")
        result = run_roomd("-c", path, "--bind=127.0.0.1", "--port=%d" % free_port(),
                           "--websocket-port=0", "--admin-port=0")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("no_such_key", result.stderr.decode().replace("-", "_"))

    def test_missing_config_file(self):
        # decision: the error names the file.
        result = run_roomd("-c", "/nonexistent/roomd.conf", "--port=%d" % free_port())
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("/nonexistent/roomd.conf", result.stderr.decode())


class Signals(RoomdTestCase):

    def test_sighup_keeps_serving(self):
        server = self.start_server()
        c = self.client(server)
        server.proc.send_signal(signal.SIGHUP)
        self.assertOK(c, "paramsView", {})
        self.assertTrue(server.alive())
        d = self.client(server)  # still accepting
        self.assertOK(d, "paramsView", {})

    def test_pid_file(self):
        fd, path = tempfile.mkstemp(prefix="roomd-test-", suffix=".pid")
        os.close(fd)
        os.unlink(path)
        self.addCleanup(lambda: os.path.exists(path) and os.unlink(path))
        server = Server(pid_file=path)
        try:
            with open(path) as f:
                self.assertEqual(f.read().strip(), str(server.pid))
        finally:
            server.stop()
        # decision: the pid file is removed at a clean exit.
        self.assertFalse(os.path.exists(path))


class Shutdown(RoomdTestCase):

    def test_sigterm_says_goodbye_to_everyone(self):
        server = Server(starting_rooms="defaultRoom,lobby")
        clients = []
        try:
            clients = [server.client() for _ in range(6)]
            self.assertOK(clients[1], "roomChange lobby", True)
            self.assertOK(clients[2], "roomLeave", True)
            self.assertOK(clients[3], "listenToRoom lobby", True)
            proc = server.proc
            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            for c in clients:
                self.assertLine(c.expect_raw({"context": "api"}, timeout=2),
                                bye_line("server shutdown"))
                c.wait_closed(timeout=2)
            rc = proc.wait(2)
            elapsed = time.monotonic() - start
            self.assertEqual(rc, 0, server.log_text())
            self.assertLess(elapsed, 1.0, "shutdown took %.2f s" % elapsed)
        finally:
            if server.proc is not None and server.proc.poll() is None:
                server.proc.kill()
            for c in clients:
                c.close()

    def test_sigint_stops_cleanly(self):
        # decision: SIGINT is a graceful stop too (DESIGN.md: "SIGTERM/SIGINT: graceful stop").
        server = Server()
        c = server.client()
        try:
            server.stop(sig=signal.SIGINT, timeout=2)
            self.assertLine(c.expect_raw({"context": "api"}), bye_line("server shutdown"))
        finally:
            c.close()

    def test_stops_with_many_idle_clients(self):
        with Server(workers=3) as server:
            clients = [server.client() for _ in range(30)]
        for c in clients:
            c.expect_goodbye("server shutdown", timeout=2)
            c.close()


if __name__ == "__main__":
    main()
