"""The help screen: the keys and the meaning of the statuses (modal)."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Markdown

from aakit.tui.widgets.keys import KeyScroll

HELP = """\
# aakit dashboard

Everything shown is read from the results directory (run directories, `grids/*/grid.json`,
`studies/*.log`); the dashboard never talks to a training process. It fits any terminal from
80x24 up: narrow tables drop their least useful columns first (a cut cell ends with "…"),
a plot that has no room is hidden rather than squashed, an empty panel is not shown.
Every mIoU is in percent.

## Everywhere
| key | action |
|-----|--------|
| `?` | this help |
| `q` | quit |
| `escape` | back / close |
| `j` / `k` / `g` / `G` | down / up / top / bottom in a list (the arrows work too) |

## Runs
| key | action |
|-----|--------|
| `enter` | open the run under the cursor (curves, config, logs, load) |
| `/` | filter: every word must appear in the name, status, host or hyperparameters |
| `s` | sort: pick a column from a menu (picking the current one reverses the order); best mIoU and progress sort highest first |
| `S` | reverse the order (or click a column header) |
| `space` | mark the run for comparison |
| `c` | compare the marked runs (two or more) |
| `1` / `2` | tab *Runs* / tab *Grids & studies* |

## Run view / compare view
| key | action |
|-----|--------|
| `e` | smoothed loss curves (exponential moving average, weight 0.9) on / off |
| `c` | run view: the config and the host's load beside the plots, or instead of them when narrow |
| `l` | compare view: next loss component (total, CLS, CE, AA, LR) |
| `escape` | back to the runs |

## Statuses
* **running** - status.json says running and the metrics moved recently
* **stale** - says running, but its process is gone (same host) or its metrics have not
  moved for longer than `stale_after` seconds
* **finished**, **failed**, **interrupted** - as written by the run
* **corrupt** - no `config.yaml`, or a `status.json` / `summary.json` that is not a JSON
  object (truncated, empty, hand-edited): the reason is in the summary line and the run view
* **unreadable** - the run directory could not be read (the reason is in the summary line)

`err` counts malformed lines of `metrics.jsonl`: they are shown, skipped, never fatal.
"""


class HelpScreen(ModalScreen[None]):
    """The keys and the meaning of the statuses."""

    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss_help", "Close", show=True),
    ]

    def compose(self) -> ComposeResult:
        with KeyScroll(id="help-box"):
            yield Markdown(HELP)

    def on_mount(self) -> None:
        self.query_one("#help-box").focus()

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
