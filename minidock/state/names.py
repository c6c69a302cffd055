"""Container IDs and names, Docker-style.

IDs are 64 hex digits (32 random bytes); any unique prefix finds a container. Names are
`adjective_scientist` like Docker's, or the user's own (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`).
"""

from __future__ import annotations

import os
import re

from minidock.errors import InvalidArgument

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

ADJECTIVES = (
    "admiring adoring affectionate agitated amazing angry awesome beautiful blissful bold boring "
    "brave busy charming clever compassionate competent condescending confident cool cranky crazy "
    "dazzling determined distracted dreamy eager ecstatic elastic elated elegant eloquent epic "
    "exciting fervent festive flamboyant focused friendly frosty funny gallant gifted goofy "
    "gracious great happy hardcore heuristic hopeful hungry infallible inspiring intelligent "
    "interesting jolly jovial keen kind laughing loving lucid magical modest musing mystifying "
    "naughty nervous nice nifty nostalgic objective optimistic peaceful pedantic pensive practical "
    "priceless quirky quizzical recursing relaxed reverent romantic sad serene sharp silly "
    "sleepy stoic strange stupefied suspicious sweet tender thirsty trusting unruffled upbeat "
    "vibrant vigilant vigorous wizardly wonderful xenodochial youthful zealous zen"
).split()
SCIENTISTS = (
    "agnesi albattani allen almeida archimedes ardinghelli aryabhata austin babbage banach "
    "bardeen bartik bassi bell benz bhabha bhaskara blackwell bohr booth borg bose boyd "
    "brahmagupta brattain brown carson chandrasekhar clarke colden cori cray curie darwin "
    "davinci dijkstra dubinsky easley edison einstein elion engelbart euclid euler faraday "
    "fermat fermi feynman franklin galileo gauss goldberg goldstine goldwasser golick goodall "
    "hamilton hawking heisenberg hermann hodgkin hoover hopper hugle hypatia jackson jang "
    "jennings jepsen johnson joliot jones kalam kapitsa keller kepler khorana kilby kirch "
    "knuth kowalevski lalande lamarr lamport leakey leavitt lewin lichterman liskov lovelace "
    "lumiere mahavira margulis matsumoto maxwell mayer mccarthy mcclintock mclean mcnulty "
    "meitner mendel mestorf mirzakhani montalcini moore morse moser napier nash neumann newton "
    "nightingale nobel noether northcutt noyce panini pare pascal pasteur payne perlman pike "
    "poincare poitras ptolemy raman ramanujan ride ritchie robinson roentgen rosalind rubin "
    "saha sammet sanderson shannon shaw shirley shockley sinoussi snyder spence stallman "
    "stonebraker swanson swartz swirles taussig tesla tharp thompson torvalds tu turing "
    "varahamihira vaughan villani visvesvaraya volhard wescoff wiles williams wilson wing "
    "wozniak wright wu yalow yonath zhukovsky"
).split()


def new_id() -> str:
    return os.urandom(32).hex()


def random_name(taken) -> str:
    def pick(seq):  # os.urandom: `random` costs an import on every `run`
        return seq[int.from_bytes(os.urandom(4), "little") % len(seq)]

    for i in range(1000):
        name = f"{pick(ADJECTIVES)}_{pick(SCIENTISTS)}"
        if i > 10:
            name += pick("0123456789")
        if name not in taken:
            return name
    raise RuntimeError("could not find a free container name")


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise InvalidArgument(f'Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
    return name.lstrip("/")
