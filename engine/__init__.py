"""The Canvasflow core: graph, parsers, validation, compiler, expressions. No Flask, no broker."""
