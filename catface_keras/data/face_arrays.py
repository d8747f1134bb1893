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
