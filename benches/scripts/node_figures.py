"""Startup-to-ready (median of N), idle RSS after 60 s, of a lucid-node binary on SQLite."""
import os, socket, subprocess, sys, tempfile, time, statistics, shutil

BIN = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 10
IDLE = int(sys.argv[3]) if len(sys.argv) > 3 else 60

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def ready(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=0.5)
        s.sendall(b"GET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = s.recv(64); s.close()
        return data.startswith(b"HTTP/1.1 200")
    except OSError:
        return False

d = tempfile.mkdtemp(prefix="lucid-fig-")
env = {k: v for k, v in os.environ.items() if not k.startswith("LUCID_")}
env["LUCID_LOG_LEVEL"] = "warn"
subprocess.run([BIN, "--data-dir", d, "init"], check=True, env=env, stdout=subprocess.DEVNULL)

def start():
    hp, gp = free_port(), free_port()
    t0 = time.monotonic()
    p = subprocess.Popen([BIN, "--data-dir", d, "run", "--http-addr", f"127.0.0.1:{hp}",
                          "--grpc-addr", f"127.0.0.1:{gp}"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not ready(hp):
        if p.poll() is not None:
            raise SystemExit("node exited")
        time.sleep(0.002)
    return p, time.monotonic() - t0

times = []
for i in range(N):
    p, t = start()
    times.append(t * 1000)
    p.terminate(); p.wait(timeout=40)
print("ready_ms", " ".join(f"{t:.0f}" for t in times))
print("ready_ms_median", f"{statistics.median(times):.0f}", "min", f"{min(times):.0f}", "max", f"{max(times):.0f}")
p, _ = start()
time.sleep(IDLE)
rss = [l for l in open(f"/proc/{p.pid}/status") if l.startswith(("VmRSS", "VmHWM"))]
print("after", IDLE, "s:", " ".join(x.split(":")[0] + "=" + x.split(":")[1].strip() for x in rss))
p.terminate(); p.wait(timeout=40)
shutil.rmtree(d)
