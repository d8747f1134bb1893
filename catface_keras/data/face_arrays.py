"""`FaceArrays`: faces held in memory with their identity and attribute labels."""

import dataclasses

import numpy as np

from catface_keras.soft_biometrics import PAPER_ATTRIBUTES


@dataclasses.dataclass(frozen=True)
class FaceArrays:
    """Faces with identity and attribute labels (synthetic faces, held-out sets).

    Attributes:
        images: `(num_images, height, width, 3)` uint8 RGB.
        identities: `(num_images,)` int32 identity labels.
        attributes: `(num_images, A)` int32 in {1, 0, -1 unknown}, columns in the order
            of `attribute_names`.
        attribute_names: the `A` attribute names (default: the paper's five).
    """

    images: np.ndarray
    identities: np.ndarray
    attributes: np.ndarray
    attribute_names: tuple = PAPER_ATTRIBUTES

    def select_attributes(self, names):
        """These faces with the attribute columns `names` (a subset, in any order).

        Raises:
            ValueError: a name these faces do not carry.
        """
        names = tuple(names)
        unknown = [name for name in names if name not in self.attribute_names]
        if unknown:
            raise ValueError(
                f"The faces carry the attributes {list(self.attribute_names)}, not {unknown}. "
                f"Received: attribute_names={list(names)}"
            )
        columns = [self.attribute_names.index(name) for name in names]
        return dataclasses.replace(
            self, attributes=self.attributes[:, columns], attribute_names=names
        )


@dataclasses.dataclass(frozen=True)
class FacePairs:
    """A verification pair list over rows of some images: `first`, `second` `(P,)` ints,
    `same` `(P,)` bools, `folds` `(P,)` ints of the 10-fold accuracy or None (contiguous)."""

    first: np.ndarray
    second: np.ndarray
    same: np.ndarray
    folds: np.ndarray = None


@dataclasses.dataclass(frozen=True)
class EvaluationFaces:
    """The decoded faces of an evaluation, as a face source reads them.

    Either identities (every protocol is drawn from them) or a pair list
    (verification only) define what is compared.

    Attributes:
        images: `(N, S, S, 3)` uint8 RGB.
        identities: `(N,)` int labels, or None with `pairs`.
        attributes: `(N, A)` ints in {1, 0, -1 unknown}, or None when not labelled.
        attribute_names: the `A` names.
        distractors: `(M, S, S, 3)` uint8 faces of people no probe shows, or None.
        pairs: a `FacePairs` over `images`, or None.
        info: JSON-safe counts and notes for the results (e.g. skipped images).
    """

    images: np.ndarray
    identities: np.ndarray = None
    attributes: np.ndarray = None
    attribute_names: tuple = ()
    distractors: np.ndarray = None
    pairs: FacePairs = None
    info: dict = dataclasses.field(default_factory=dict)
