"""``clean:``: the processors each field goes through, read from a spider file.

``CleanReader`` reads a ``clean:`` mapping (of a page kind, of its ``page_fields``
or of a follow rule) into each field's chain of processors, built from the
registry in ``scraper.fields``, and the fields marked ``raw``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import regex
import yaml

from scraper.errors import Location, SpecError
from scraper.fields import PROCESSORS, Processor, ProcessorArgumentError, chain
from scraper.regexspec import RegexReader, raw_offset
from scraper.yamlnodes import did_you_mean


class CleanReader(RegexReader):
    """Reads ``clean:`` mappings: each field's processors, and ``raw``."""

    def clean(
        self,
        node: yaml.Node,
        where: str,
        known: Sequence[str],
        unknown: Callable[[str], str],
        every: Sequence[str] | None = None,
    ) -> tuple[dict[str, tuple[Processor, ...]], frozenset[str]]:
        """A ``clean:`` mapping: each field's processors, and the fields marked ``raw``.

        A key names a field of ``known``, several (``a, b``), or ``'*'``: each of
        ``every`` (default ``known``), whose processors run first. A field named by
        several keys gets their processors in the order written. ``unknown(name)``
        is the message for a name not in ``known``.
        """
        entries = self.mapping(node, f"{where}: clean", None)
        steps: dict[str, list[tuple[str, Processor]]] = {}
        raw_fields: set[str] = set()
        for key, (key_node, value_node) in sorted(entries.items(), key=lambda e: e[0] != "*"):
            names = (
                list(known if every is None else every)
                if key == "*"
                else self.clean_key(key, key_node, where, known, unknown)
            )
            field_steps, raw = self.processor_steps(value_node, f"{where}: clean: {key}")
            for name in names:
                steps.setdefault(name, []).extend(field_steps)
                if raw:
                    raw_fields.add(name)
        return {name: chain(chained) for name, chained in steps.items()}, frozenset(raw_fields)

    def clean_key(
        self,
        key: str,
        key_node: yaml.Node,
        where: str,
        known: Sequence[str],
        unknown: Callable[[str], str],
    ) -> list[str]:
        """The fields a ``clean:`` key names: one, or several separated by commas."""
        if key in known:
            return [key]
        names: list[str] = []
        start = 0
        for part in key.split(","):
            name = part.strip()
            position = start + len(part) - len(part.lstrip())
            start += len(part) + 1
            problem = unknown(name) if name not in known else None
            if name in names:
                problem = f"{where}: clean: {key!r} names {name!r} twice; name it once."
            if problem is not None:
                mark = key_node.start_mark
                column = mark.column + 1 + raw_offset(key_node, position)
                raise SpecError(problem, Location(self.filename, mark.line + 1, column))
            names.append(name)
        return names

    def processors(self, node: yaml.Node, what: str) -> tuple[tuple[Processor, ...], bool]:
        """One field's processors as they run (see ``scraper.fields.chain``), and ``raw``."""
        steps, raw = self.processor_steps(node, what)
        return chain(steps), raw

    def processor_steps(
        self, node: yaml.Node, what: str
    ) -> tuple[list[tuple[str, Processor]], bool]:
        """The processors of a ``clean:`` entry by name, in order, and whether ``raw`` is one."""
        built: list[tuple[str, Processor]] = []
        raw = False
        for item in self.sequence(node, what):
            if isinstance(item, yaml.MappingNode):
                parts = self.mapping(item, what, None)
                if len(parts) != 1:
                    raise self.error(item, f"{what}: write one processor per list entry.")
                name, (_, arg_node) = next(iter(parts.items()))
                argument = self.json_value(arg_node, f"{what}: {name}")
            else:
                name, arg_node, argument = self.text(item, what), item, None
            if name == "raw":
                if argument is not None:
                    raise self.error(
                        arg_node, f"{what}: raw takes no argument; write it as a plain name."
                    )
                raw = True
                continue
            if name not in PROCESSORS:
                raise self.error(
                    item,
                    f"{what}: unknown processor {name!r}{did_you_mean(name, list(PROCESSORS))}"
                    f" (known: raw, {', '.join(PROCESSORS)}).",
                )
            try:
                built.append((name, PROCESSORS[name](argument)))
            except ProcessorArgumentError as exc:
                raise self.error(arg_node, f"{what}: {name} {exc}.") from None
            except regex.error as exc:  # sub: [pattern, replacement], findall: pattern
                pattern_node, source = arg_node, argument
                if isinstance(arg_node, yaml.SequenceNode):
                    pattern_node, source = arg_node.value[0], argument[0]
                raise self.regex_error(
                    pattern_node, f"{what}: {name} pattern", source, exc
                ) from None
            except (RecursionError, OverflowError, MemoryError):
                raise self.error(
                    arg_node,
                    f"{what}: {name} pattern nests groups too deeply to compile; simplify it.",
                ) from None
        return built, raw
