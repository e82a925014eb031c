"""Shared by the benchmark scripts: print a markdown section and append it to docs/benchmarks.md."""


def publish(lines: list[str], out: str | None) -> None:
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        with open(out, "a") as f:
            f.write("\n" + text)
