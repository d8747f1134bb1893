"""The soft-biometric attributes CATFace uses (docs/PAPER.md section 1), in label order.

Kept free of TensorFlow so that configuration and data code can name them
without loading it.
"""

PAPER_ATTRIBUTES = ("Male", "Bald", "Big_Nose", "Chubby", "Narrow_Eyes")

# The 40 attributes of CelebA's list_attr_celeba.txt, in the file's column order.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
    "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes",
    "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)

# An attribute label that is not known (labels are 1 positive, 0 negative, -1 unknown);
# the SB loss and the attribute accuracy leave it out.
MISSING_LABEL = -1
